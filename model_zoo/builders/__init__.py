"""One builder module per weights source. Each exposes ``build(spec, request) -> weights.Built``:
the architecture named by the catalog row, with pretrained, random or local-file weights.

Modules import their framework inside ``build`` so that importing them stays cheap.
"""
