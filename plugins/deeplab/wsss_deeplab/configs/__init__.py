"""Configs shipped with the DeepLab plugin: ``wsss-run deeplab::synthetic.py``."""
