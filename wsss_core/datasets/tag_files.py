"""Image tag files: one row per image naming the image and its class names (no masks).

The file a user writes for :class:`~.tagged_folder.TaggedImageFolder`.  Two forms, chosen by
the suffix (``.json``: JSON; ``.tsv``: tab-separated; anything else: comma-separated):

CSV / TSV
    A header line naming the columns, then one row per image::

        image,tags
        cats/001.jpg,cat
        002.png,cat;dog
        "odd, name.jpg",dog|person

    ``image`` and ``tags`` are required; ``split`` is optional (``train``, ``val``, any
    name); other columns are ignored.  Header names are matched without case or surrounding
    spaces.  Cells follow the usual CSV quoting (``"a, b"``), but a quoted cell may not span
    lines.
JSON
    An object ``{"cats/001.jpg": ["cat"], "002.png": "cat;dog"}``, or a list of objects
    ``[{"image": "cats/001.jpg", "tags": ["cat"], "split": "train"}, ...]`` (``split``
    optional, other keys ignored).

Tags: a JSON list of strings, or a string split by the tag rule: with ``tag_separator``
given, on exactly that string; otherwise on ``;`` and ``|`` when the cell holds either, else
on whitespace.  So ``cat dog`` is two tags and ``traffic light;person`` keeps the space in
``traffic light``.  Each tag is stripped and its inner runs of whitespace become one space;
empty pieces (``cat;``) are dropped, a tag repeated in a row counts once.

Text rules are those of :mod:`.text_files`: UTF-8 with or without a byte-order mark, LF or
CRLF, blank lines skipped; every error is a :class:`~wsss_core.io.DataFileError` naming
``file:line`` (for JSON, the line where the entry starts).
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..io import DataFileError
from .text_files import read_text, read_text_lines

__all__ = ['TagRow', 'read_tag_file', 'split_tags', 'read_class_names_file',
           'check_class_names']

_WS = re.compile(r'[ \t\n\r]*')
_AUTO_SEPARATORS = re.compile(r'[;|]')


@dataclass(frozen=True)
class TagRow:
    """One row of a tag file: the image as written, its tags (file order, each once), the
    split (``None`` where the file has no split column) and the line it starts on."""
    lineno: int
    image: str
    tags: Tuple[str, ...]
    split: Optional[str]


def split_tags(cell: str, tag_separator: Optional[str] = None) -> Tuple[str, ...]:
    """The tags of one cell by the rule of the module docstring."""
    if tag_separator:
        pieces = cell.split(tag_separator)
    elif _AUTO_SEPARATORS.search(cell):
        pieces = _AUTO_SEPARATORS.split(cell)
    else:
        pieces = cell.split()
    return _clean_tags(pieces)


def _clean_tags(pieces) -> Tuple[str, ...]:
    """Stripped, inner whitespace runs made one space, empty ones dropped, each once."""
    tags = (' '.join(p.split()) for p in pieces)
    return tuple(dict.fromkeys(t for t in tags if t))


def read_tag_file(path, tag_separator: Optional[str] = None) -> List[TagRow]:
    """Every row of a tag file (CSV, TSV or JSON by suffix), in file order.

    Rows are checked for form only (an image cell, a tags cell, a split where the file has
    splits); whether the images exist and the tags are known classes is the dataset's check.
    """
    path = Path(path)
    if path.suffix.lower() == '.json':
        return _read_json(path, tag_separator)
    return _read_csv(path, '\t' if path.suffix.lower() == '.tsv' else ',', tag_separator)


# ----------------------------------------------------------------------------- CSV
def _cells(line: str, delimiter: str, where: str) -> List[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise DataFileError(f'{where}: not a valid CSV row ({exc}); a quoted cell must close '
                            'on its own line') from None


def _read_csv(path: Path, delimiter: str, tag_separator) -> List[TagRow]:
    lines = read_text_lines(path, 'tag file')
    if not lines:
        raise DataFileError(f'{path}: the tag file is empty; it needs a header line '
                            "'image,tags' and one row per image")
    head_no, head = lines[0]
    names = [c.strip().lower() for c in _cells(head, delimiter, f'{path}:{head_no}')]
    if 'image' not in names or 'tags' not in names:
        raise DataFileError(f'{path}:{head_no}: the first line must be a header naming the '
                            f"columns 'image' and 'tags' (and optionally 'split'); found "
                            f'{head.strip()!r}')
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:
        raise DataFileError(f'{path}:{head_no}: column(s) {twice} named twice in the header')
    col_img, col_tags = names.index('image'), names.index('tags')
    col_split = names.index('split') if 'split' in names else None
    rows = []
    for lineno, line in lines[1:]:
        where = f'{path}:{lineno}'
        cells = _cells(line, delimiter, where)
        if len(cells) != len(names):
            hint = (' (quote a cell that holds a comma, or separate tags with ; or |)'
                    if len(cells) > len(names) and delimiter == ',' else '')
            raise DataFileError(f'{where}: {len(cells)} cells, but the header names '
                                f'{len(names)} columns{hint}')
        split = _split_cell(cells[col_split], where) if col_split is not None else None
        rows.append(TagRow(lineno, _image_cell(cells[col_img], where),
                           split_tags(cells[col_tags], tag_separator), split))
    return rows


def _image_cell(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataFileError(f'{where}: no image named (the image cell is empty)')
    return value.strip()


def _split_cell(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataFileError(f'{where}: no split named; the file has a split column, so every '
                            'row needs one (e.g. train or val)')
    return value.strip()


# ----------------------------------------------------------------------------- JSON
def _json_entries(text: str) -> Tuple[str, List[Tuple[int, object]]]:
    """``(opener, [(line, entry)])`` of a validated JSON document's top-level object or list;
    an object's entries are ``(key, value)`` pairs, duplicate keys kept."""
    dec = json.JSONDecoder()
    pos_line = [0, 1]   # the last position counted and its line

    def line_of(pos: int) -> int:
        pos_line[1] += text.count('\n', pos_line[0], pos)
        pos_line[0] = pos
        return pos_line[1]

    def skip(i: int) -> int:
        return _WS.match(text, i).end()

    i = skip(0)
    opener = text[i]
    closer = '}' if opener == '{' else ']'
    i = skip(i + 1)
    entries: List[Tuple[int, object]] = []
    while text[i] != closer:
        start = i
        if opener == '{':
            key, i = dec.raw_decode(text, i)
            i = skip(skip(i) + 1)          # past the ':'
            value, i = dec.raw_decode(text, i)
            entry: object = (key, value)
        else:
            entry, i = dec.raw_decode(text, i)
        entries.append((line_of(start), entry))
        i = skip(i)
        if text[i] == ',':
            i = skip(i + 1)
    return opener, entries


def _tags_value(value, where: str, tag_separator) -> Tuple[str, ...]:
    if isinstance(value, str):
        return split_tags(value, tag_separator)
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return _clean_tags(value)
    raise DataFileError(f'{where}: tags must be a list of class names or one string, not '
                        f'{json.dumps(value)[:80]}')


def _read_json(path: Path, tag_separator) -> List[TagRow]:
    text = read_text(path, 'tag file')
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(f'{path}:{exc.lineno}: not valid JSON: {exc.msg} (column '
                            f'{exc.colno})') from None
    if not isinstance(doc, (dict, list)):
        raise DataFileError(f'{path}:1: a JSON tag file holds an object {{"image": [tags]}} or '
                            f'a list of {{"image": ..., "tags": [...]}} objects, not a '
                            f'{type(doc).__name__}')
    opener, entries = _json_entries(text)
    rows = []
    if opener == '{':
        for lineno, (image, tags) in entries:
            where = f'{path}:{lineno}'
            rows.append(TagRow(lineno, _image_cell(image, where),
                               _tags_value(tags, where, tag_separator), None))
        return rows
    with_split = any(isinstance(e, dict) and 'split' in e for _, e in entries)
    for lineno, entry in entries:
        where = f'{path}:{lineno}'
        if not isinstance(entry, dict):
            raise DataFileError(f'{where}: a list entry must be an object with "image" and '
                                f'"tags", not {json.dumps(entry)[:80]}')
        missing = [k for k in ('image', 'tags') if k not in entry]
        if missing:
            raise DataFileError(f'{where}: entry lacks {missing} (keys found: '
                                f'{sorted(entry)})')
        split = _split_cell(entry.get('split'), where) if with_split else None
        rows.append(TagRow(lineno, _image_cell(entry['image'], where),
                           _tags_value(entry['tags'], where, tag_separator), split))
    return rows


def read_class_names_file(path) -> Tuple[List[str], List[int]]:
    """Class names of a text file, one per line (the rules of :mod:`.text_files`), with
    their line numbers; names are stripped."""
    lines = read_text_lines(path, 'class name file')
    return [ln.strip() for _, ln in lines], [n for n, _ in lines]


def check_class_names(names: Sequence[str], source, lines: Optional[Sequence[int]] = None
                      ) -> Tuple[str, ...]:
    """``names`` as a tuple (whitespace as for tags), refusing empty, repeated or
    ``background`` names.

    Background is implicit (label 0) in every label map of the project; an image showing
    none of the classes has an empty tag list.
    """
    seen = {}
    out = []
    for k, raw in enumerate(names):
        where = f'{source}:{lines[k]}' if lines is not None else f'{source}[{k}]'
        name = ' '.join(raw.split()) if isinstance(raw, str) else ''
        if not name:
            raise DataFileError(f'{where}: class name {raw!r} is not a non-empty string')
        if name.lower() == 'background':
            raise DataFileError(f"{where}: 'background' cannot be a class: it is label 0 of "
                                'every label map; give an image without objects an empty tag '
                                'list (allow_empty_tags=True)')
        if name in seen:
            raise DataFileError(f'{where}: class name {name!r} listed twice (first at '
                                f'{seen[name]})')
        seen[name] = where
        out.append(name)
    return tuple(out)
