"""Getting one item onto disk: fetch its downloads (or take them ``--from`` a path), verify
them, install them, record the ledger.

:func:`prepare_item` is the whole flow for one item (after the items it ``requires``):

1. already ``present`` (and not ``force``): nothing to do;
2. each :class:`~.items.Download` comes from ``from_path`` (a file, or a folder holding the
   file by its name) or is downloaded into ``<root>/.downloads/`` (mirrors in order,
   resumed, verified against the published checksum, or against the SHA-256 recorded at
   the first download when none is published); a download only a person can fetch
   without ``from_path`` is a :class:`ManualDownloadRequired` saying how;
3. the install (``file``: copy into place atomically; ``extract``: safe extraction under
   the root; ``module:function``: a conversion) writes the item's files;
4. the ledger records them (:mod:`.ledger`); the downloads are deleted unless kept.

Nothing under the item's final path is written before its downloads verified, and an
install that does not finish (an error, Ctrl-C, a full disk) leaves its
``.wsss-prepare/<item>.installing`` note and no new ledger, so the item stays ``missing`` /
``corrupt`` and a rerun starts over.
"""
from __future__ import annotations

import importlib
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

from .items import Download, PrepareItem, root_dir
from .ledger import (file_sha256, installing_path, item_status, ledger_problem, read_ledger,
                     write_ledger)

__all__ = ['ManualDownloadRequired', 'PrepareError', 'prepare_item', 'prepare_items',
           'resolve_order', 'DOWNLOAD_DIR']

logger = logging.getLogger('wsss')

DOWNLOAD_DIR = '.downloads'


class PrepareError(RuntimeError):
    """An item could not be prepared; the message says which and why."""


class ManualDownloadRequired(PrepareError):
    """A download has no URL a program can use and no ``--from`` path was given."""


def resolve_order(names, items: Mapping[str, PrepareItem]) -> List[PrepareItem]:
    """``names`` and everything they require, each once, requirements first."""
    order: List[PrepareItem] = []
    seen = set()

    def visit(name: str, chain: tuple) -> None:
        if name in chain:
            raise PrepareError(f"prepare items require each other: {' -> '.join(chain + (name,))}")
        if name in seen:
            return
        item = items[name]
        for dep in item.requires:
            visit(dep, chain + (name,))
        seen.add(name)
        order.append(item)

    for name in names:
        visit(name, ())
    return order


def prepare_items(names, items: Mapping[str, PrepareItem], *, roots: Optional[Mapping] = None,
                  from_path: Optional[os.PathLike] = None, force: bool = False,
                  progress: bool = True, keep_downloads: bool = False,
                  report: Callable[[str], None] = print) -> Dict[str, str]:
    """Prepare ``names`` and the requirements of what gets installed (see
    :func:`prepare_item`); returns ``{name: 'present' | 'installed'}``, requirements first.
    ``from_path`` applies to the named items only.

    An item kept as it is needs none of its requirements: one that is ``present`` (without
    ``force`` or ``from_path``), and a requirement that is ``unverified`` (put in place by
    hand: no ledger), which is used as it is, not fetched again.  So a hand-placed VOCdevkit
    that holds ``SegmentationClassAug`` makes ``voc12-aug`` usable for the items built on it
    without fetching VOC or SBD.  ``force`` installs everything again; naming an unverified
    item installs it (and records it)."""
    order = resolve_order(names, items)
    kept: Dict[str, str] = {}     # name -> the line that says why it is kept
    needed = set(names)
    for item in reversed(order):   # each item before its requirements
        if item.name not in needed:
            continue
        named = item.name in names
        if not force and not (named and from_path is not None):
            status, detail = item_status(item, root_dir(item.root, (roots or {}).get(item.root)))
            if status == 'present':
                kept[item.name] = f'{item.name}: present ({detail})'
                continue
            if status == 'unverified' and not named:
                kept[item.name] = (f'{item.name}: {detail}; used as it is (a requirement; '
                                   f'wsss-prepare {item.name} --from PATH records it)')
                continue
        needed.update(item.requires)
    done: Dict[str, str] = {}
    for item in order:
        if item.name not in needed:
            continue
        if item.name in kept:
            report(kept[item.name])
            done[item.name] = 'present'
            continue
        given = from_path if item.name in names else None
        done[item.name] = prepare_item(item, roots=roots, from_path=given, force=force,
                                       progress=progress, keep_downloads=keep_downloads,
                                       report=report)
    return done


def prepare_item(item: PrepareItem, *, roots: Optional[Mapping] = None,
                 from_path: Optional[os.PathLike] = None, force: bool = False,
                 progress: bool = True, keep_downloads: bool = False,
                 report: Callable[[str], None] = print) -> str:
    """Fetch, verify, install and record ``item`` (see the module docstring).

    Args:
        roots: ``{'data': DIR, 'weights': DIR}`` overrides (else ``$WSSS_DATA`` / ... ).
        from_path: take the downloads from this file or folder instead of the network.
        force: reinstall an item that is present.
    Returns:
        ``'present'`` (nothing done) or ``'installed'``.
    """
    roots = dict(roots or {})
    base = root_dir(item.root, roots.get(item.root))
    status, detail = item_status(item, base)
    if status == 'present' and not force and from_path is None:
        report(f'{item.name}: present ({detail})')
        return 'present'
    if status in ('corrupt', 'unverified'):
        report(f'{item.name}: {status} ({detail}); installing again')
    previous = read_ledger(item, base) or {}
    files: Dict[str, Path] = {}
    records: Dict[str, dict] = {}
    for dl in item.downloads:
        path, record = _obtain(item, dl, base, from_path, previous, progress, report)
        files[dl.filename] = path
        records[dl.filename] = record
    installing = installing_path(item, base)   # until the ledger: an interrupted install
    installing.parent.mkdir(parents=True, exist_ok=True)   # is 'corrupt', never trusted
    installing.write_text(f'{item.name}: install started\n', encoding='utf-8')
    try:
        written = _install(item, files, base, roots, from_path is not None)
    except Exception:
        # refused before it changed anything (e.g. --from a wrong folder): the files of the
        # previous install still have their recorded sizes, so that install stands
        if previous.get('files') and ledger_problem(item, base, previous) is None:
            installing.unlink()
        raise
    sha256 = records[item.downloads[0].filename]['sha256'] if item.install == 'file' else None
    write_ledger(item, written, downloads=records,
                 source='from' if from_path is not None else 'download', root=base,
                 sha256=sha256)
    installing.unlink()
    if not keep_downloads and from_path is None:
        for path in files.values():
            if path.parent.name == DOWNLOAD_DIR and path.exists():
                path.unlink()
    report(f'{item.name}: installed at {item.location(base)}')
    return 'installed'


# ----------------------------------------------------------------------------- downloads
def _obtain(item: PrepareItem, dl: Download, base: Path, from_path, previous: dict,
            progress: bool, report) -> tuple:
    """``(path, {'sha256': ..., 'size': ...})`` of one download, verified."""
    from .download import DownloadError, download, verify_file
    recorded = (previous.get('downloads') or {}).get(dl.filename, {}).get('sha256')
    expected_sha = dl.sha256 or recorded
    if from_path is not None:
        path = _locate(Path(from_path), dl, item)
        if path.is_dir():     # a folder of files (saliency maps): the install checks them
            return path, dict(sha256=None, size=None)
        try:
            verify_file(path, sha256=expected_sha, md5=dl.md5, size=dl.size)
        except DownloadError as exc:
            raise PrepareError(f'{item.name}: {path} is not the expected {dl.filename}: '
                               f'{exc}') from exc
    elif dl.urls:
        path = base / DOWNLOAD_DIR / dl.filename
        report(f'{item.name}: downloading {dl.filename}'
               + (f' (about {dl.approx_mb:,.0f} MB)' if dl.approx_mb else ''))
        try:
            download(list(dl.urls), path, sha256=expected_sha, md5=dl.md5, size=dl.size,
                     progress=progress)
        except DownloadError as exc:
            raise PrepareError(f'{item.name}: {exc}') from exc
    else:
        raise ManualDownloadRequired(
            f'{item.name}: {dl.filename} cannot be downloaded by a program. {dl.manual}. '
            f'Then run: wsss-prepare {item.name} --from PATH')
    sha = file_sha256(path)
    if not dl.sha256 and not dl.md5 and recorded is None:
        logger.info('%s: %s has no published checksum; recorded SHA-256 %s', item.name,
                    dl.filename, sha)
    return path, dict(sha256=sha, size=path.stat().st_size)


def _locate(from_path: Path, dl: Download, item: PrepareItem) -> Path:
    """The file for ``dl`` under ``--from``: the path itself when it is a file (and the
    item has one download or the name matches), else ``<from>/<filename>``, else (one
    download, installed by a conversion) the folder itself."""
    if from_path.is_file():
        if len(item.downloads) == 1 or from_path.name == dl.filename:
            return from_path
        raise PrepareError(f'{item.name} needs {len(item.downloads)} files '
                           f'({", ".join(d.filename for d in item.downloads)}): give --from '
                           'a folder holding them')
    candidate = from_path / dl.filename
    if candidate.is_file():
        return candidate
    if len(item.downloads) == 1 and from_path.is_dir() and ':' in item.install:
        return from_path      # the folder itself, for a conversion that reads folders
    raise PrepareError(f'{item.name}: {dl.filename} is not in {from_path}'
                       + (f' ({dl.manual})' if dl.manual else ''))


# ----------------------------------------------------------------------------- installs
def _install(item: PrepareItem, files: Dict[str, Path], base: Path, roots: Mapping,
             from_user: bool) -> List[Path]:
    """Run the item's install; returns the files it wrote (absolute paths under ``base``)."""
    if item.install == 'file':
        src = next(iter(files.values()))
        dest = item.location(base)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f'.{dest.name}.installing')
        shutil.copyfile(src, tmp)   # a copy: a --from file is the user's, keep it
        os.replace(tmp, dest)
        return [dest]
    if item.install == 'extract':
        from .extract import safe_extract
        written: List[Path] = []
        for path in files.values():
            written.extend(Path(p) for p in safe_extract(path, base / item.extract_to))
        return written
    module, _, name = item.install.partition(':')
    fn = getattr(importlib.import_module(module), name)
    written = fn(item, files, base, {k: root_dir(k, roots.get(k)) for k in ('data', 'weights')})
    return [Path(p) for p in written]
