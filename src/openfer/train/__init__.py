"""Training (the ``[train]`` extra: PyTorch). Nothing in the core package imports this."""
