"""Configs shipped with wsss-moana (``wsss-run moana::<name>.py``)."""
