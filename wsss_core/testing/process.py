"""Prepare a test process the way the suites here need it (for plugins' test helpers too)."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile


def isolate_test_process(prefix: str = 'wsss_tests_') -> str:
    """One torch / OpenMP thread (several test processes share few cores), the offline hub
    (timm must not wait on name resolution), and generated data sets in a fresh temporary
    ``WSSS_CACHE`` removed at exit.  Returns the cache directory."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    cache = tempfile.mkdtemp(prefix=prefix)
    os.environ['WSSS_CACHE'] = cache
    atexit.register(shutil.rmtree, cache, True)
    import torch  # after the variables above
    torch.set_num_threads(1)
    return cache
