"""Saliency maps for a VOC-layout data set: checked against a split and installed where the
configs read them (``<data_root>/<saliency_dir>/<id>.png``).

Saliency-based methods (OAA, NSROM, EDAM, GETAM) each used maps from a salient-object
detector that their authors published as an archive; most of those links are shared drives
that only a person can download (the items in the plugins say which).  Whatever the source,
:func:`install_saliency_maps` takes a folder or an archive of ``<id>.png`` maps and

1. finds the maps (at any depth of the folder or archive; a map is a ``.png`` whose stem is
   an image id of the split);
2. checks that every image of the split has one and that each map has its image's size
   (PIL reads only the headers), naming the first missing / wrong ones, before anything is
   written;
3. copies them (as 8-bit greyscale PNGs, converted when stored otherwise) into the
   destination folder atomically per file, and returns the files written.

``wsss-prepare saliency --from DIR_OR_ARCHIVE --split train_aug`` runs it on the installed
``voc12-aug`` tree (``--data-root`` / ``--dest`` to change where).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence

from ..io import DataFileError

__all__ = ['find_maps', 'check_saliency_maps', 'install_saliency_maps']


def find_maps(folder: Path, ids: Sequence[str]) -> Dict[str, Path]:
    """``{id: path}`` of the ``<id>.png`` files anywhere under ``folder`` whose id is in
    ``ids``; an id found twice (in two sub-folders) is an error naming both."""
    wanted = set(ids)
    found: Dict[str, Path] = {}
    for path in sorted(folder.rglob('*.png')):
        stem = path.stem
        if stem not in wanted:
            continue
        if stem in found:
            raise DataFileError(f'saliency map of {stem} found twice: {found[stem]} and {path}')
        found[stem] = path
    return found


def check_saliency_maps(maps: Dict[str, Path], images: Dict[str, Path]) -> None:
    """Every image has a map of its size; a DataFileError lists the first problems."""
    from PIL import Image
    missing = [i for i in images if i not in maps]
    wrong = []
    for img_id, img_path in images.items():
        if img_id not in maps:
            continue
        with Image.open(img_path) as im, Image.open(maps[img_id]) as sal:
            if im.size != sal.size:
                wrong.append(f'{img_id}: map {sal.size[1]}x{sal.size[0]}, image '
                             f'{im.size[1]}x{im.size[0]}')
    problems = []
    if missing:
        problems.append(f'{len(missing)} of {len(images)} images have no map (first: '
                        f"{', '.join(missing[:5])})")
    if wrong:
        problems.append(f'{len(wrong)} maps have the wrong size ({"; ".join(wrong[:3])})')
    if problems:
        raise DataFileError('saliency maps do not fit the split: ' + '; '.join(problems))


def install_saliency_maps(source: os.PathLike, data_root: os.PathLike, split: str,
                          dest: str = 'saliency', data_type: str = 'VOC2012') -> List[Path]:
    """Check and install the maps of ``source`` (folder or archive) for ``split`` of the
    ``data_type`` data set at ``data_root`` into ``<data_root>/<dest>/``; see the module."""
    from ..datasets import build_dataset
    dataset = build_dataset(dict(type=data_type, data_root=os.fspath(data_root)), split=split,
                            load_gt=False)
    images = {rec.img_id: Path(rec.img_path) for rec in dataset.records}
    source = Path(source)
    with tempfile.TemporaryDirectory(prefix='.saliency-', dir=Path(data_root)) as tmp:
        folder = source
        if source.is_file():
            from .extract import safe_extract
            safe_extract(source, Path(tmp) / 'unpacked',
                         members_filter=lambda name: name.lower().endswith('.png'))
            folder = Path(tmp) / 'unpacked'
        elif not source.is_dir():
            raise FileNotFoundError(f'saliency source {source} does not exist')
        maps = find_maps(folder, list(images))
        check_saliency_maps(maps, images)
        return _copy_maps(maps, Path(data_root) / dest)


def _copy_maps(maps: Dict[str, Path], out_dir: Path) -> List[Path]:
    from PIL import Image

    from ..io import atomic_write
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for img_id, path in sorted(maps.items()):
        dest = out_dir / f'{img_id}.png'
        with Image.open(path) as sal:
            if sal.mode == 'L':
                with atomic_write(dest) as fh, open(path, 'rb') as src:
                    shutil.copyfileobj(src, fh)
            else:
                with atomic_write(dest) as fh:
                    sal.convert('L').save(fh, format='PNG')
        written.append(dest)
    return written
