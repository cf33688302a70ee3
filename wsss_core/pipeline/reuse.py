"""Reuse a stage finished in another work dir (``wsss-run CONFIG --reuse-from DIR ...``).

A stage's config hash covers its options, the data config and the hashes of the stages it
reads (:mod:`~wsss_core.pipeline.pipeline`), so a finished stage in another work dir whose
manifest carries the same hash under the same stage name is the very stage this run would
compute.  :func:`reuse_finished_stage` takes the first source dir that has one: it copies the
stage dir into ``<work_dir>/.reusing/<name>`` (hard links where the file system allows it:
stage files are written once and replaced, never changed in place, so a link cannot see a
later edit; copies otherwise), checks the copy -- its manifest's hash again and every file
against the manifest's checksums, so a source changed or corrupted meanwhile is caught -- and
only then renames it to ``<work_dir>/<name>``.  A source whose copy fails the check is
passed over with a warning (the next source, else the stage runs); a damaged source manifest
likewise.  Nothing in a source dir is changed.

The paths a stage's manifest records for its own files are relative to its stage dir, so
the copy is valid where it lands; a ``Pretrain`` stage also records the absolute path of its
weights in ``$WSSS_CACHE`` (which a copy shares with its source).  A config that composes
several methods (the zoo, ``configs/zoo.py``) takes their finished stages from the methods'
own runs this way.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

from .checksums import CorruptArtifactError, verify_stage
from .manifest import DamagedManifestError, read_manifest
from .stage import StageError

__all__ = ['finished_with', 'reuse_finished_stage', 'REUSING_DIR']

logger = logging.getLogger('wsss')

#: where a copy is assembled before it takes its stage's name (hidden from the report)
REUSING_DIR = '.reusing'


def finished_with(stage_dir, digest: str) -> Optional[dict]:
    """The manifest of ``stage_dir`` when it finished with hash ``digest``, else None (also
    for a damaged manifest, with a warning)."""
    stage_dir = Path(stage_dir)
    if not stage_dir.is_dir():
        return None
    try:
        manifest = read_manifest(stage_dir)
    except DamagedManifestError:
        logger.warning(f'{stage_dir}: damaged manifest, not reused')
        return None
    return manifest if manifest is not None and manifest.get('config_hash') == digest else None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def reuse_finished_stage(stage_name: str, digest: str, sources: Sequence[Path],
                         stage_dir: Path,
                         make_room: Optional[Callable[[], None]] = None) -> Optional[Path]:
    """Put a checked copy of the first ``source/stage_name`` that finished with ``digest``
    at ``stage_dir`` and return that source dir; None when no source has one that passes the
    check.  ``stage_dir`` must not exist when the copy is renamed into place: ``make_room``
    (which moves what is there aside) is called once, as soon as a source with ``digest``
    is found, so nothing here is touched when no source has the stage.  An error of the file
    system (full disk, permissions) is raised as a
    :class:`~wsss_core.pipeline.stage.StageError` naming both dirs."""
    stage_dir = Path(stage_dir)
    partial = stage_dir.parent / REUSING_DIR / stage_name
    for source in sources:
        source_dir = Path(source) / stage_name
        if finished_with(source_dir, digest) is None:
            continue
        if make_room is not None:
            make_room()
            make_room = None
        try:
            if partial.exists():
                shutil.rmtree(partial)
            partial.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source_dir, partial, symlinks=True, copy_function=_link_or_copy)
            manifest = finished_with(partial, digest)
            if manifest is None:
                raise CorruptArtifactError(f'{source_dir} changed while it was copied')
            verify_stage(partial, manifest, stage_name)
            os.replace(partial, stage_dir)
            with contextlib.suppress(OSError):   # the last copy out leaves no empty .reusing
                partial.parent.rmdir()
        except CorruptArtifactError as exc:
            logger.warning(f'[{stage_name}] not reused from {source_dir}: {exc}')
            shutil.rmtree(partial, ignore_errors=True)
            continue
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise StageError(f'[{stage_name}] copying the finished stage {source_dir} to '
                             f'{stage_dir} failed: {exc}') from exc
        return source_dir
    return None
