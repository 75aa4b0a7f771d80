"""alignbench's model zoo: the catalog of models, their adapters and saliency, and the harmonizer."""
