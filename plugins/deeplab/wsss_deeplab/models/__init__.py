"""DeepLab networks: backbone, ASPP heads, multi-scale fusion, segmentors, loss, weights.

Importing a submodule registers its components; :mod:`wsss_deeplab.plugin` imports them
all when the plugin loads.
"""
