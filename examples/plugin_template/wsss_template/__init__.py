"""wsss-template: a complete small wsss method plugin to copy."""
__version__ = '0.1.0'
