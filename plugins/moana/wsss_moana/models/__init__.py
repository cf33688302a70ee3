"""MoANA models: the block, the backbones it goes into, the classifier."""
