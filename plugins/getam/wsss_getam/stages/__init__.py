"""GETAM's training stage."""
