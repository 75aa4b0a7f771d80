"""A real ImageNet-pretrained network and photographs for explainer tests and bench scripts."""
