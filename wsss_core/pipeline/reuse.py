"""Reuse a stage finished in another work dir (``wsss-run CONFIG --reuse-from DIR ...``).

A stage's config hash covers its options, the data config and the hashes of the stages it
reads (:mod:`~wsss_core.pipeline.pipeline`), so a finished stage in another work dir whose
manifest carries the same hash under the same stage name is the very stage this run would
compute.  :func:`find_reusable` finds one (first source dir that has it, its files checked
against the manifest's checksums) and :func:`adopt_stage_dir` puts a copy in place: files
hard-linked where the file system allows it (stage files are written once and replaced, never
changed in place, so a link cannot see a later edit), copied otherwise; the copy appears
under its final name only when complete.

Every path a manifest records is relative to its stage dir, so the copy is valid where it
lands.  Nothing in the source dir is changed.  A config that composes several methods (the
zoo, ``configs/zoo.py``) takes their finished stages from the methods' own runs this way.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

from .checksums import verify_stage
from .manifest import DamagedManifestError, read_manifest

__all__ = ['find_reusable', 'adopt_stage_dir']

logger = logging.getLogger('wsss')


def find_reusable(stage_name: str, digest: str, sources: Sequence[Path]) -> Optional[Path]:
    """The first ``source/stage_name`` that finished with config hash ``digest`` and whose
    files match its manifest, else None.  A source stage with another hash, no manifest or a
    damaged one is passed over; one whose files fail their checksums raises
    :class:`~wsss_core.pipeline.checksums.CorruptArtifactError` (naming the files) rather
    than being copied."""
    for source in sources:
        stage_dir = Path(source) / stage_name
        if not stage_dir.is_dir():
            continue
        try:
            manifest = read_manifest(stage_dir)
        except DamagedManifestError:
            logger.info(f'[{stage_name}] {stage_dir}: damaged manifest, not reused')
            continue
        if manifest is None or manifest.get('config_hash') != digest:
            continue
        verify_stage(stage_dir, manifest, stage_name)
        return stage_dir
    return None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def adopt_stage_dir(source: Path, stage_dir: Path) -> None:
    """Copy the finished ``source`` stage dir to ``stage_dir`` (which must not exist):
    hard links where possible, into ``<stage_dir>.reusing`` first, renamed when complete."""
    stage_dir = Path(stage_dir)
    partial = stage_dir.with_name(stage_dir.name + '.reusing')
    if partial.exists():
        shutil.rmtree(partial)
    stage_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, partial, symlinks=True, copy_function=_link_or_copy)
    os.replace(partial, stage_dir)
