"""Stage manifests and the state file that make skip-when-done and resume work.

``work_dir/<stage>/state.json`` is written when a stage starts (its config hash and
status ``running``); ``work_dir/<stage>/manifest.json`` is written last, when the stage
finished, with the hash, inputs, counts, metrics, artifacts and the size and SHA-256 of
every file the stage wrote (``files``, see :mod:`~wsss_core.pipeline.checksums`).  A stage
whose manifest hash matches is skipped (once its files verify); one whose state hash
matches but has no manifest was interrupted.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Optional

from ..io import read_json, write_json

MANIFEST = 'manifest.json'
STATE = 'state.json'


def config_hash(*parts) -> str:
    """A stable hash of JSON-serialisable parts (dict keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(',', ':'))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class DamagedManifestError(RuntimeError):
    """A stage's ``manifest.json`` exists but cannot be read: the stage's files can no longer
    be trusted (a manifest is written atomically, so this is damage, not an interrupted run)."""


def read_manifest(stage_dir) -> Optional[dict]:
    """The manifest of a finished stage; None when the stage has not finished (no manifest,
    or not ``complete``).  A manifest that exists but cannot be read raises
    :class:`DamagedManifestError` naming it: treating it as "not finished" would resume the
    stage over files nothing vouches for and record them as good."""
    path = Path(stage_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        data, why = None, f'{type(exc).__name__}: {exc}'
    else:
        why = f'it holds a {type(data).__name__}, not a record'
    if not isinstance(data, dict):
        name = Path(stage_dir).name
        raise DamagedManifestError(
            f'{path}: the manifest of stage {name!r} is damaged ({why}); its files cannot be '
            f'trusted: redo the stage with `wsss-run CONFIG --stages {name}` (the old files '
            'are moved to .superseded/)')
    return data if data.get('status') == 'complete' else None


def read_state(stage_dir) -> Optional[dict]:
    path = Path(stage_dir) / STATE
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def write_state(stage_dir, stage_name: str, hash_: str) -> None:
    write_json(Path(stage_dir) / STATE, dict(stage=stage_name, config_hash=hash_,
                                             status='running', started=time.time()))


def write_manifest(stage_dir, record: dict) -> None:
    """Write the finished stage's manifest, with the checksums of the files under
    ``stage_dir`` (computed here, over the whole dir: all shards' files once merged)."""
    from .checksums import checksum_files
    record = dict(record, files=checksum_files(stage_dir), status='complete',
                  finished=time.time())
    write_json(Path(stage_dir) / MANIFEST, record)
