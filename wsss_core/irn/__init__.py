"""Inter-pixel relations (IRN, Ahn, Cho & Kwak, CVPR 2019): pair geometry, random walk, model."""
