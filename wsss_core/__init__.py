"""wsss core: plugin framework for weakly supervised semantic segmentation on mmengine."""
__version__ = '0.1.0'
