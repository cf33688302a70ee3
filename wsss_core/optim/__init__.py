"""DeepLab optimisation: parameter groups with lr multipliers, the poly schedule."""
