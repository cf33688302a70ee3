"""What ``wsss-prepare`` installed, and whether it is still there: the ledger.

Each installed item gets ``<root>/.wsss-prepare/<item>.json``::

    {"item": "voc12", "installed": "2026-12-06T17:40:00Z", "source": "download" | "from",
     "downloads": {"<filename>": {"sha256": "...", "size": N}},
     "files": {"<path under the root>": N, ...}}

``files`` lists every file the install wrote with its size (a single weight file also with
its SHA-256 under ``downloads`` or ``sha256``).  The status of an item
(:func:`item_status`):

* ``missing``: its marker path does not exist;
* ``present``: the marker exists and every file of the ledger has its recorded size;
* ``corrupt``: a ledger file is missing or has another size (or, with ``deep``, another
  SHA-256 for single-file items), or an install began and did not finish (its
  ``<root>/.wsss-prepare/<item>.installing`` note is still there: Ctrl-C, a full disk or a
  failed conversion part-way, with the marker path perhaps already written);
* ``unverified``: the marker exists but there is no ledger (put there by hand): usable,
  but ``wsss-prepare ITEM --from PATH`` or a re-download records it.

Checksums of downloads that the source does not publish are recorded here at the first
download and checked on every later one (trust on first use).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Iterable, Optional

from ..io import atomic_write
from .items import PrepareItem, root_dir

__all__ = ['LEDGER_DIR', 'ledger_path', 'installing_path', 'read_ledger', 'write_ledger',
           'item_status', 'ledger_problem', 'file_sha256', 'STATUSES']

LEDGER_DIR = '.wsss-prepare'
STATUSES = ('present', 'missing', 'corrupt', 'unverified')


def ledger_path(item: PrepareItem, root: Optional[os.PathLike] = None) -> Path:
    return root_dir(item.root, root) / LEDGER_DIR / f'{item.name}.json'


def installing_path(item: PrepareItem, root: Optional[os.PathLike] = None) -> Path:
    """The note an install writes before its first file and removes after its ledger."""
    return root_dir(item.root, root) / LEDGER_DIR / f'{item.name}.installing'


def read_ledger(item: PrepareItem, root: Optional[os.PathLike] = None) -> Optional[dict]:
    """The item's ledger, or None (no ledger, or one that is not valid JSON)."""
    path = ledger_path(item, root)
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None


def write_ledger(item: PrepareItem, files: Iterable[os.PathLike], *, downloads: Dict[str, dict],
                 source: str, root: Optional[os.PathLike] = None,
                 sha256: Optional[str] = None) -> Path:
    """Record ``files`` (paths under the item's root) with their sizes, atomically;
    ``sha256``: the installed file's, for a single-file item."""
    base = root_dir(item.root, root)
    entries = {}
    for f in files:
        f = Path(f)
        rel = f.relative_to(base) if f.is_absolute() else f
        entries[rel.as_posix()] = (base / rel).stat().st_size
    record = dict(item=item.name, installed=_dt.datetime.now(_dt.timezone.utc)
                  .strftime('%Y-%m-%dT%H:%M:%SZ'), source=source, downloads=downloads,
                  files=dict(sorted(entries.items())))
    if sha256 is not None:
        record['sha256'] = sha256
    path = ledger_path(item, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, 'w') as fh:
        json.dump(record, fh, indent=1)
    return path


def file_sha256(path: os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for block in iter(lambda: fh.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def ledger_problem(item: PrepareItem, base: Path, ledger: dict) -> Optional[str]:
    """The first file of ``ledger`` (under ``base``) that is missing or has another size than
    recorded, as a message; None when all are as recorded."""
    for rel, size in ledger.get('files', {}).items():
        path = base / rel
        if not path.is_file():
            return f'{path} is missing'
        if path.stat().st_size != size:
            return f'{path}: {path.stat().st_size} bytes, {size} recorded'
    return None


def item_status(item: PrepareItem, root: Optional[os.PathLike] = None,
                deep: bool = False) -> tuple:
    """``(status, detail)`` of ``item`` under ``root`` (see the module docstring).

    ``detail`` names the first problem (a missing or resized file, a changed checksum).
    ``deep`` also re-hashes a single-file item against its recorded SHA-256.
    """
    base = root_dir(item.root, root)
    if not item.marker_path(base).exists():
        return 'missing', f'{item.marker_path(base)} does not exist'
    if installing_path(item, base).exists():
        again = f'wsss-prepare {item.name}' + (' --from PATH' if item.manual_only else '')
        return 'corrupt', (f'an install began and did not finish '
                           f'({installing_path(item, base)}): run {again} again')
    ledger = read_ledger(item, base)
    if ledger is None:
        return 'unverified', 'present, not installed by wsss-prepare (no ledger)'
    problem = ledger_problem(item, base, ledger)
    if problem is not None:
        return 'corrupt', problem
    recorded = ledger.get('sha256')
    if deep and recorded:
        actual = file_sha256(item.location(base))
        if actual != recorded:
            return 'corrupt', (f'{item.location(base)}: SHA-256 {actual[:16]}..., '
                               f'{recorded[:16]}... recorded')
    return 'present', f"installed {ledger.get('installed', '?')} ({len(ledger.get('files', {}))} files)"
