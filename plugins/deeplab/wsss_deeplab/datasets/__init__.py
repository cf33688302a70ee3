"""DeepLab data: the reference augmentation and segmentation training samples."""
