"""Peak memory of a stage, recorded in its manifest as ``peak_memory_mb``.

* ``rss``: the highest resident set size of the stage's process while the stage ran,
  sampled every ``interval`` seconds by a daemon thread (``/proc/self/statm``; Linux), in
  MiB.  Worker processes a stage spawns are not included; a spike shorter than the sampling
  interval can be missed.
* ``cuda``: ``torch.cuda.max_memory_allocated`` over the stage (the peak counter is reset at
  the start), in MiB, when CUDA is initialised.
"""
from __future__ import annotations

import os
import threading
from typing import Optional

__all__ = ['PeakMemory']

_PAGE = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096


def _rss_bytes() -> Optional[int]:
    try:
        with open('/proc/self/statm') as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Context manager: ``with PeakMemory() as peak: ...`` then ``peak.record()``."""

    def __init__(self, interval: float = 0.2):
        self.interval = float(interval)
        self._peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._cuda = False

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._update()

    def _update(self) -> None:
        rss = _rss_bytes()
        if rss is not None and (self._peak is None or rss > self._peak):
            self._peak = rss

    def __enter__(self) -> 'PeakMemory':
        import torch
        self._cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
        if self._peak is not None:
            self._thread = threading.Thread(target=self._sample, name='wsss-peak-memory',
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._update()

    def record(self) -> dict:
        """``{'rss': MiB}`` (and ``'cuda'`` when used); empty where nothing could be read."""
        out = {}
        if self._peak is not None:
            out['rss'] = round(self._peak / 2 ** 20, 1)
        import torch
        if self._cuda or (torch.cuda.is_available() and torch.cuda.is_initialized()):
            out['cuda'] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
        return out
