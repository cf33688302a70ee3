"""OAA's networks: the VGG16 backbone at output stride 8, the attention head, the classifier."""
