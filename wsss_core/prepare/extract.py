"""Safe archive extraction: every member checked first, nothing written outside the target.

:func:`safe_extract` unpacks ``.tar``, ``.tar.gz`` / ``.tgz``, ``.tar.bz2`` / ``.tbz2``,
``.tar.xz`` / ``.txz`` and ``.zip`` archives (other names: the content decides).

**What is refused.**  Before anything is written, every member of the archive (those
``members_filter`` drops included) is checked; the first one that fails raises
:class:`UnsafeArchiveError` naming it and the rule, and nothing is extracted:

* a name that is absolute (``/etc/x``), starts with a Windows drive (``C:``), contains a
  backslash (a Windows separator), a NUL character, or a ``..`` component (``../x``,
  ``a/../../x``; even ``a/../b``, which would stay inside: no archive needs one);
* a symbolic or hard link (tar), a zip entry whose Unix mode (``external_attr``) says
  symbolic link, and device, FIFO or socket members; tar members must be regular files or
  folders;
* a member the tar module's own ``data`` filter (:func:`tarfile.data_filter`, Python
  3.10.12+/3.11.4+) rejects, as a second opinion;
* and, while writing, a path whose resolved location is not inside the temporary folder
  (it cannot happen after the checks above; kept as a last guard).

Only file contents and folders are created: no owners, no permission bits from the archive
(files get the default mode, ``0o666`` less the umask), modification times kept.

**Where it goes.**  ``strip_components=N`` drops the first ``N`` components of each name
(as ``tar --strip-components``; members left with no name are skipped).  The tree is built
in a hidden temporary folder and moved into place when complete:

* if ``target`` does not exist, the folder ``.<target name>.extract.<pid@host>.<random>``
  is made beside it and renamed to ``target`` at the end: ``target`` appears whole, or not
  at all;
* if ``target`` already is a folder, the temporary folder ``.extract.<pid@host>.<random>``
  is made inside it (the same file system as its content), and its top-level entries are
  then renamed into ``target`` one by one: a new entry appears whole; an existing folder
  receives the new files (each renamed in, replacing a file of the same name).

On any error the temporary folder is deleted.  One left by a killed process is deleted by
the next :func:`safe_extract` to the same target on the same machine.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

__all__ = ['ArchiveError', 'UnsafeArchiveError', 'ARCHIVE_SUFFIXES', 'archive_format',
           'check_member_name', 'safe_extract']

ARCHIVE_SUFFIXES = {'.tar': 'tar', '.tar.gz': 'tar', '.tgz': 'tar', '.tar.bz2': 'tar',
                    '.tbz2': 'tar', '.tbz': 'tar', '.tar.xz': 'tar', '.txz': 'tar',
                    '.zip': 'zip'}
_CHUNK = 1 << 20
_DRIVE = re.compile(r'^[A-Za-z]:')
_TEMP = re.compile(r'^(?:\..+)?\.extract\.(?P<pid>\d+)@(?P<host>[^@/.]+)\.[A-Za-z0-9_]+$')

MemberFilter = Callable[[str], bool]


class ArchiveError(ValueError):
    """An archive cannot be read (corrupt, truncated, or not an archive); names the file."""


class UnsafeArchiveError(ArchiveError):
    """An archive member could land outside the target folder or is not a plain file or
    folder; names the archive, the member and the rule."""

    def __init__(self, archive, member: str, reason: str):
        super().__init__(f'{archive}: refusing to extract: member {member!r} {reason}; '
                         'nothing was extracted')
        self.archive = archive
        self.member = member
        self.reason = reason


@dataclass(frozen=True)
class _Member:
    name: str                   # as in the archive
    parts: Tuple[str, ...]      # normalised components (no '', '.')
    is_dir: bool
    info: Union[tarfile.TarInfo, zipfile.ZipInfo]
    mtime: Optional[float]


def archive_format(path) -> str:
    """``'tar'`` or ``'zip'`` for the archive at ``path``: from its name's suffix, else from
    its content; :class:`ArchiveError` if neither says."""
    name = Path(path).name.lower()
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return ARCHIVE_SUFFIXES[suffix]
    if zipfile.is_zipfile(path):
        return 'zip'
    with contextlib.suppress(OSError):
        if tarfile.is_tarfile(path):
            return 'tar'
    raise ArchiveError(f'{path}: not a tar or zip archive (suffixes known: '
                       f'{", ".join(ARCHIVE_SUFFIXES)})')


def check_member_name(name: str) -> Tuple[str, ...]:
    """The components of the member name ``name`` (``''`` and ``.`` dropped); raises
    ``ValueError(reason)`` if the name is absolute, has a drive, a backslash, a NUL or a
    ``..`` component."""
    if '\x00' in name:
        raise ValueError('contains a NUL character')
    if '\\' in name:
        raise ValueError('contains a backslash (a Windows path separator)')
    if name.startswith('/'):
        raise ValueError('is an absolute path')
    if _DRIVE.match(name):
        raise ValueError('starts with a Windows drive letter')
    parts = tuple(p for p in name.split('/') if p not in ('', '.'))
    if '..' in parts:
        raise ValueError("has a '..' component")
    return parts


def _tar_members(tf: tarfile.TarFile, archive, target: Path) -> List[_Member]:
    members = []
    for info in tf.getmembers():
        try:
            parts = check_member_name(info.name)
        except ValueError as exc:
            raise UnsafeArchiveError(archive, info.name, str(exc)) from None
        if info.issym():
            raise UnsafeArchiveError(archive, info.name,
                                     f'is a symbolic link (to {info.linkname!r})')
        if info.islnk():
            raise UnsafeArchiveError(archive, info.name,
                                     f'is a hard link (to {info.linkname!r})')
        if info.ischr() or info.isblk():
            raise UnsafeArchiveError(archive, info.name, 'is a device file')
        if info.isfifo():
            raise UnsafeArchiveError(archive, info.name, 'is a FIFO')
        if not (info.isreg() or info.isdir()):
            raise UnsafeArchiveError(archive, info.name,
                                     f'is not a regular file or folder (type {info.type!r})')
        data_filter = getattr(tarfile, 'data_filter', None)
        if data_filter is not None:
            try:
                data_filter(info, os.fspath(target))
            except tarfile.FilterError as exc:
                raise UnsafeArchiveError(archive, info.name,
                                         f'is refused by the tar data filter ({exc})') from None
        members.append(_Member(info.name, parts, info.isdir(), info, float(info.mtime)))
    return members


def _zip_members(zf: zipfile.ZipFile, archive) -> List[_Member]:
    members = []
    for info in zf.infolist():
        try:
            parts = check_member_name(info.filename)
        except ValueError as exc:
            raise UnsafeArchiveError(archive, info.filename, str(exc)) from None
        mode = info.external_attr >> 16
        if mode:
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(archive, info.filename,
                                         'is a symbolic link (Unix mode in external_attr)')
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) \
                    or stat.S_ISSOCK(mode):
                raise UnsafeArchiveError(archive, info.filename,
                                         'is a device, FIFO or socket (Unix mode in '
                                         'external_attr)')
        try:
            mtime: Optional[float] = time.mktime(info.date_time + (0, 0, -1))
        except (ValueError, OverflowError):
            mtime = None
        members.append(_Member(info.filename, parts, info.is_dir(), info, mtime))
    return members


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _write_tree(members: List[_Member], opener, tmp: Path, archive,
                members_filter: Optional[MemberFilter], strip_components: int) -> List[Path]:
    """Create the members in ``tmp``; return their paths relative to ``tmp`` (files only)."""
    root = os.path.realpath(tmp)
    written: List[Path] = []
    seen = set()
    for m in members:
        if members_filter is not None and not members_filter('/'.join(m.parts)):
            continue
        parts = m.parts[strip_components:]
        if not parts:
            continue
        dst = tmp.joinpath(*parts)
        if not _inside(os.path.realpath(dst), root):   # last guard; the checks exclude it
            raise UnsafeArchiveError(archive, m.name, 'resolves outside the target folder')
        if m.is_dir:
            dst.mkdir(parents=True, exist_ok=True)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        with opener(m.info) as src, open(dst, 'wb') as out:
            shutil.copyfileobj(src, out, _CHUNK)
        if m.mtime is not None:
            with contextlib.suppress(OSError, OverflowError, ValueError):
                os.utime(dst, (m.mtime, m.mtime))
        rel = Path(*parts)
        if rel not in seen:
            seen.add(rel)
            written.append(rel)
    return written


def _move_entry(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; a folder onto an existing folder is merged entry by entry,
    a file replaces a file; another file system is crossed by copying."""
    if dst.is_dir() and src.is_dir() and not src.is_symlink():
        for child in sorted(src.iterdir()):
            _move_entry(child, dst / child.name)
        src.rmdir()
        return
    if dst.is_dir() != src.is_dir() and (dst.exists() or dst.is_symlink()):
        kind = 'folder' if src.is_dir() else 'file'
        raise ArchiveError(f'cannot put the {kind} {src.name} at {dst}: something else '
                           'is there')
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(os.fspath(src), os.fspath(dst))


def _remove_stale_temps(*folders: Path) -> None:
    """Delete temporary folders of this module left by dead processes of this machine."""
    from ..io import _host_tag, _process_gone
    host = _host_tag()
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            match = _TEMP.match(name)
            if match and match['host'] == host and _process_gone(int(match['pid'])):
                shutil.rmtree(folder / name, ignore_errors=True)


def safe_extract(archive, target, *, members_filter: Optional[MemberFilter] = None,
                 strip_components: int = 0) -> List[Path]:
    """Extract ``archive`` into the folder ``target``; return the paths of the files written
    (under ``target``, in archive order).  See the module docstring for what is refused and
    how the tree is moved into place.

    ``members_filter(name) -> bool``: extract only the members it accepts; ``name`` is the
    member's name as in the archive, normalised (``/``-separated, no ``./``), before
    ``strip_components``.  ``strip_components``: leading name components to drop."""
    from ..io import _umask, _writer_tag
    archive, target = Path(archive), Path(target)
    if strip_components < 0:
        raise ValueError(f'strip_components must be >= 0: got {strip_components}')
    if target.exists() and not target.is_dir():
        raise ArchiveError(f'cannot extract {archive.name} into {target}: it is not a folder')
    kind = archive_format(archive)
    try:
        with (zipfile.ZipFile(archive) if kind == 'zip' else tarfile.open(archive, 'r:*')) as ar:
            if kind == 'zip':
                members, opener = _zip_members(ar, archive), ar.open
            else:
                members = _tar_members(ar, archive, target)
                opener = ar.extractfile
            if target.is_dir():
                parent, prefix = target, '.extract.'
                _remove_stale_temps(target.parent, target)
            else:
                parent, prefix = target.parent, f'.{target.name}.extract.'
                parent.mkdir(parents=True, exist_ok=True)
                _remove_stale_temps(parent)
            tmp = Path(tempfile.mkdtemp(prefix=f'{prefix}{_writer_tag()}.', dir=parent))
            os.chmod(tmp, 0o777 & ~_umask())      # mkdtemp's 0o700 would become target's
            try:
                rel = _write_tree(members, opener, tmp, archive, members_filter,
                                  strip_components)
                _place(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) \
            as exc:
        raise ArchiveError(f'{archive}: cannot read the archive ({type(exc).__name__}: '
                           f'{exc})') from exc
    return [target / r for r in rel]


def _place(tmp: Path, target: Path) -> None:
    """Move the finished tree ``tmp`` to ``target`` (see the module docstring)."""
    if not target.exists():
        try:
            os.rename(tmp, target)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise                     # target appeared meanwhile: merge into it
    for child in sorted(tmp.iterdir()):
        _move_entry(child, target / child.name)
