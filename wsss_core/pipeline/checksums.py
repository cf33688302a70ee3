"""Checksums of the files a stage wrote: recorded in its manifest, verified before use.

When a stage's manifest is written (:func:`~wsss_core.pipeline.manifest.write_manifest`),
every file under the stage dir gets an entry

    manifest['files'][relpath] = {'sha256': <hex digest>, 'bytes': <size>}

(``relpath`` relative to the stage dir, ``/``-separated).  Not recorded, because they are
not artifacts or keep changing after the stage finished:

* ``manifest.json`` and ``state.json`` (the records themselves);
* the stage's log files ``stage.log`` (``stage.rank<r>.log``, ``stage.shard-<i>-of-<n>.log``;
  :mod:`~wsss_core.console`): the result line is written after the manifest;
* ``shards/`` (the records of sharded runs, merged into the manifest);
* hidden files (``.lock``, the ``.name.*.tmp`` temporaries of atomic writes);
* mmengine's per-run log folder ``<YYYYMMDD_HHMMSS>/`` (text log, ``vis_data`` scalars)
  and its config dump ``<YYYYMMDD_HHMMSS>.py`` at the top of a training stage's dir: the
  log file stays open after the stage, and later log lines of the same process may land in it.

* a training stage's resume checkpoints at its top level (``epoch_N.pth``, ``iter_N.pth``,
  ``last_checkpoint``): a finished stage never resumes and later stages read its final
  weights (``model.pth``), so deleting old checkpoints to free disk must not break a run.

The final weights (``model.pth``), CAMs, label PNGs, metrics JSON and every other file are
recorded.

:func:`verify_stage` checks a finished stage's files against its manifest: sizes first
(a ``stat`` per file), then the SHA-256 of every file whose size matched, so a missing,
truncated or changed file (one flipped byte included) is caught; the result is cached per
process by stage dir and record, so a stage read by several later stages is hashed once.
The runner verifies a finished stage when it skips it, and
:meth:`~wsss_core.pipeline.stage.StageContext.manifest_of` when a later stage reads it;
``wsss-run CONFIG --verify`` verifies every finished stage of a work dir and reports.
Manifests written before checksums existed (no ``files``) are accepted, with one log line.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from .stage import StageError

__all__ = ['HASH', 'CorruptArtifactError', 'BadFile', 'is_recorded', 'stage_files',
           'file_digest', 'checksum_files', 'check_files', 'verify_stage', 'verify_work_dir']

HASH = 'sha256'          # the fastest hashlib digest here (SHA-NI): ~0.8 GB/s on one core
_CHUNK = 1 << 20
_UNRECORDED_NAMES = {'manifest.json', 'state.json'}
_UNRECORDED_DIRS = {'shards'}
_MMENGINE_RUN = re.compile(r'^\d{8}_\d{6}(\.py)?$')   # mmengine's run-log folder / config dump
_RESUME_CHECKPOINT = re.compile(r'^((epoch|iter)_\d+\.pth|last_checkpoint)$')
_STAGE_LOG = re.compile(r'^stage(\.(rank\d+|shard-\d+-of-\d+))?\.log$')
_MAX_LISTED = 20

logger = logging.getLogger('wsss')


class CorruptArtifactError(StageError):
    """Files of a finished stage are missing or differ from its manifest; names each one."""


@dataclass(frozen=True)
class BadFile:
    """One recorded file that no longer matches: ``problem`` is 'missing', 'size' or 'hash'."""
    path: str
    problem: str
    expected: dict
    actual_bytes: Optional[int] = None
    actual_hash: Optional[str] = None

    def describe(self) -> str:
        want_b, want_h = self.expected.get('bytes'), self.expected.get(HASH, '')
        if self.problem == 'missing':
            return f'{self.path}: missing (expected {want_b} bytes, {HASH} {want_h[:16]})'
        if self.problem == 'size':
            how = 'truncated' if self.actual_bytes < want_b else 'grown'
            return (f'{self.path}: {how}, {self.actual_bytes} bytes where the manifest has '
                    f'{want_b}')
        return (f'{self.path}: content changed, {HASH} {self.actual_hash[:16]} where the '
                f'manifest has {want_h[:16]} (size {want_b} bytes as recorded)')


def is_recorded(relpath: str) -> bool:
    """Whether the file at ``relpath`` (relative to the stage dir) gets a checksum."""
    parts = relpath.split('/')
    if any(p.startswith('.') for p in parts):
        return False
    if len(parts) == 1:
        return parts[0] not in _UNRECORDED_NAMES and not _MMENGINE_RUN.match(parts[0]) \
            and not _RESUME_CHECKPOINT.match(parts[0]) and not _STAGE_LOG.match(parts[0])
    return parts[0] not in _UNRECORDED_DIRS and not _MMENGINE_RUN.match(parts[0])


def stage_files(stage_dir) -> List[str]:
    """The recorded files under ``stage_dir``: sorted relative paths with ``/``."""
    root = Path(stage_dir)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = '' if rel_dir == '.' else rel_dir.replace(os.sep, '/') + '/'
        dirnames[:] = [d for d in dirnames if is_recorded(prefix + d + '/x')]
        out.extend(prefix + f for f in filenames
                   if is_recorded(prefix + f) and os.path.isfile(os.path.join(dirpath, f)))
    return sorted(out)


def file_digest(path) -> str:
    """The SHA-256 hex digest of the file at ``path``, read in 1 MiB chunks."""
    h = hashlib.new(HASH)
    with open(path, 'rb') as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def _workers(n_files: int) -> int:
    """Threads for hashing (hashlib drops the GIL on large updates): a few, never more
    than the files."""
    return max(1, min(4, os.cpu_count() or 1, n_files))


def _hash_all(paths: List[Path]) -> List[str]:
    if _workers(len(paths)) == 1:
        return [file_digest(p) for p in paths]
    with ThreadPoolExecutor(_workers(len(paths))) as pool:
        return list(pool.map(file_digest, paths))


def checksum_files(stage_dir) -> Dict[str, dict]:
    """``{relpath: {'sha256': hex, 'bytes': size}}`` of every recorded file of the stage."""
    root = Path(stage_dir)
    rels = stage_files(root)
    paths = [root / r for r in rels]
    sizes = [p.stat().st_size for p in paths]
    return {rel: {HASH: digest, 'bytes': size}
            for rel, size, digest in zip(rels, sizes, _hash_all(paths))}


def check_files(stage_dir, files: Dict[str, dict]) -> List[BadFile]:
    """The recorded ``files`` that are missing, of another size, or of another hash."""
    root = Path(stage_dir)
    bad, same_size = [], []
    for rel, want in files.items():
        try:
            size = (root / rel).stat().st_size
        except FileNotFoundError:
            bad.append(BadFile(rel, 'missing', want))
            continue
        if size != want.get('bytes'):
            bad.append(BadFile(rel, 'size', want, actual_bytes=size))
        else:
            same_size.append(rel)
    digests = _hash_all([root / rel for rel in same_size])
    for rel, digest in zip(same_size, digests):
        if digest != files[rel].get(HASH):
            bad.append(BadFile(rel, 'hash', files[rel], actual_bytes=files[rel].get('bytes'),
                               actual_hash=digest))
    return sorted(bad, key=lambda b: b.path)


# ----------------------------------------------------------------------------- verification
_VERIFIED: set = set()       # (real stage dir, digest of its files record): checked here
_NO_CHECKSUMS: set = set()   # stage dirs already logged as carrying no checksums


def _record_key(stage_dir, files: dict) -> Tuple[str, str]:
    blob = json.dumps(files, sort_keys=True, separators=(',', ':')).encode()
    return os.path.realpath(stage_dir), hashlib.sha256(blob).hexdigest()


def redo_hint(name: str) -> str:
    return (f'rerun `wsss-run CONFIG --stages {name}` to redo that stage (its files are moved '
            f'to .superseded/{name} first)')


def corrupt_message(name: str, stage_dir, bad: List[BadFile]) -> str:
    lines = [f"stage '{name}': {len(bad)} file(s) in {stage_dir} differ from its manifest "
             '(corrupted, truncated, deleted or changed since the stage finished):']
    lines += [f'  {b.describe()}' for b in bad[:_MAX_LISTED]]
    if len(bad) > _MAX_LISTED:
        lines.append(f'  ... and {len(bad) - _MAX_LISTED} more')
    lines.append(redo_hint(name))
    return '\n'.join(lines)


def verify_stage(stage_dir, manifest: dict, name: Optional[str] = None) -> None:
    """Raise :class:`CorruptArtifactError` naming every recorded file of a finished stage
    that is missing, of another size or of another SHA-256; once per process per record."""
    name = name or manifest.get('stage') or Path(stage_dir).name
    files = manifest.get('files')
    if files is None:
        key = os.path.realpath(stage_dir)
        if key not in _NO_CHECKSUMS:
            _NO_CHECKSUMS.add(key)
            logger.info(f"[{name}] its manifest predates checksums: files not verified "
                        f'(redo the stage with --stages {name} to record them)')
        return
    key = _record_key(stage_dir, files)
    if key in _VERIFIED:
        return
    start = time.perf_counter()
    bad = check_files(stage_dir, files)
    if bad:
        raise CorruptArtifactError(corrupt_message(name, stage_dir, bad))
    _VERIFIED.add(key)
    logger.debug(f'[{name}] {len(files)} files verified in {time.perf_counter() - start:.2f} s')


def verify_work_dir(work_dir, names: Iterable[str]) -> Tuple[List[str], bool]:
    """Check every finished stage of ``names`` in ``work_dir`` (uncached): the report lines
    (one per stage, then each bad file) and whether all finished stages are intact."""
    from .manifest import DamagedManifestError, read_manifest
    lines, ok = [], True
    for name in names:
        stage_dir = Path(work_dir) / name
        try:
            manifest = read_manifest(stage_dir)
        except DamagedManifestError as exc:
            ok = False
            lines.append(f'{name}: BAD, {exc}')
            continue
        if manifest is None:
            lines.append(f'{name}: not finished (nothing to verify)')
            continue
        files = manifest.get('files')
        if files is None:
            lines.append(f'{name}: no checksums (its manifest predates them): not verified')
            continue
        start = time.perf_counter()
        bad = check_files(stage_dir, files)
        took = time.perf_counter() - start
        size = sum(int(f.get('bytes', 0)) for f in files.values()) / 1e6
        if not bad:
            lines.append(f'{name}: OK ({len(files)} files, {size:.1f} MB, {took:.2f} s)')
            continue
        ok = False
        lines.append(f'{name}: BAD, {len(bad)} of {len(files)} files')
        lines += [f'  {b.describe()}' for b in bad]
        lines.append(f'  -> {redo_hint(name)}')
    return lines, ok
