"""The text files of a data set (image lists, label lists, WSOL metadata): lines and image ids.

One reading rule for all of them, so that a list behaves the same wherever it is read:

* the file is UTF-8, with or without a byte-order mark (stripped); other bytes are a
  :class:`~wsss_core.io.DataFileError` naming the file and the line of the first bad byte;
* lines end at ``\\n``; a ``\\r`` before it (CRLF, Windows) is dropped;
* blank (whitespace-only) lines are skipped; line numbers count every line, from 1, so a
  message ``list.txt:7`` points at what an editor shows as line 7.

Image ids are file names without a suffix: :func:`check_image_id` refuses what would make
a path leave its folder (separators, ``.``/``..``, NUL).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from ..io import DataFileError

__all__ = ['check_image_id', 'read_text', 'read_text_lines', 'check_unique_ids']

_BOM = b'\xef\xbb\xbf'


def check_image_id(img_id: str, list_file) -> None:
    """Refuse list entries that are empty or point outside the data root."""
    if not img_id or '/' in img_id or '\\' in img_id or img_id in ('.', '..') or '\x00' in img_id:
        raise DataFileError(f'{list_file}: entry {img_id!r} is not a plain image id; entries '
                            'with path separators or .. would point outside the data root')


def read_text(path, what: str = 'list') -> str:
    """The whole text of a UTF-8 file, byte-order mark stripped (see the module doc).

    A missing or unreadable file, or bytes that are not UTF-8, are a
    :class:`~wsss_core.io.DataFileError` naming the file (and the line of the first bad byte).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(f'{what} not found: {path}') from None
    except OSError as exc:   # a directory, no permission, an I/O error
        raise DataFileError(f'cannot read {what} {path}: {exc}') from exc
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as exc:
        lineno = data.count(b'\n', 0, exc.start) + 1
        raise DataFileError(f'{path}:{lineno}: {what} is not UTF-8 text (byte '
                            f'0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8'
                            ) from None
    return text


def read_text_lines(path, what: str = 'list') -> List[Tuple[int, str]]:
    """``(line number, line)`` of the non-blank lines of a UTF-8 text file (see the module doc).

    ``what`` names the file in messages (``'image list'``, ``'metadata file'``).  Lines keep
    their inner and surrounding spaces; only the line end (``\\n`` or ``\\r\\n``) is removed.
    """
    text = read_text(path, what)
    out = []
    for lineno, line in enumerate(text.split('\n'), 1):
        if line.endswith('\r'):
            line = line[:-1]
        if line.strip():
            out.append((lineno, line))
    return out


def check_unique_ids(ids_with_lines, path) -> None:
    """Refuse an id listed twice, naming it and both lines: ``ids_with_lines`` = (id, line)."""
    first: Dict[str, int] = {}
    for img_id, lineno in ids_with_lines:
        if img_id in first:
            raise DataFileError(f'{path}:{lineno}: image id {img_id!r} appears twice (first '
                                f'on line {first[img_id]}); each image may be listed once')
        first[img_id] = lineno
