"""Training stages of EDAM."""
