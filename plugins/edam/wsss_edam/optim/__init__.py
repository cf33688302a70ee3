"""EDAM's optimiser groups and schedule."""
