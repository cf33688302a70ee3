"""EDAM networks: the DA layer, collaborative multi-attention and the classifier."""
