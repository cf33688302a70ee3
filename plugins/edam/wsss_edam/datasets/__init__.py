"""Image pairs that share a class, for collaborative multi-attention."""
