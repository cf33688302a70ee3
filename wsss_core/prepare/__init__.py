"""``wsss-prepare``: fetch, verify and convert the data sets and weight files a config needs.

The transport layer lives in :mod:`wsss_core.prepare.download` (resumable, verified HTTP
downloads) and :mod:`wsss_core.prepare.extract` (archive extraction that refuses members
escaping the target folder).  Nothing is imported here, so importing the package is cheap
and downloads nothing.
"""
