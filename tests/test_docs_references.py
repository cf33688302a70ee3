"""The repository's references to its documentation resolve, and none points at the old notes.

The method notes now live in ``docs/`` (``docs/README.md`` lists them).  Two rules:

* No tracked ``.py`` / ``.md`` / ``.txt`` / ``.toml`` / ``.sh`` file outside ``docs/`` names the
  old notes outside the repository: a path into the sibling ``shared`` folder or its ``specs``
  folder, one of the old note file names, or the word spec followed by a section number of the
  old notes (:data:`OLD_NOTE_RE`).
* Every relative markdown link ``[text](path#anchor)`` in a tracked ``.md`` file and every
  ``docs/<page>.md#anchor`` written in a tracked ``.py`` file names an existing file and, when an
  anchor is given, a heading of that page.  Anchors are GitHub's heading slugs: the heading text
  lower-cased, every character other than a letter, digit, ``_``, ``-`` or space dropped, spaces
  turned into ``-``, and ``-1``, ``-2``, ... appended to repeats.
"""
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKED_SUFFIXES = ('.py', '.md', '.txt', '.toml', '.sh')

# Spelled in pieces so that this file does not contain the strings it looks for.
_OLD_NOTE_PATTERNS = [
    re.escape('..' + '/shared'),
    re.escape('shared' + '/specs'),
    r'(?<![\w-])' + re.escape('specs' + '/'),
    r'\b(?:getam_baseline|edam_moana|oaa_nsrom_deeplab|synthetic_benchmark|DESIGN)' + r'\.md\b',
    r'\b[Ss]pec\s+(?:§\s*)?(?:[AB]\.|\d+\.)\d',  # the word spec, an old section number
]
OLD_NOTE_RE = re.compile('|'.join(_OLD_NOTE_PATTERNS))

#: ``[text](target)``; the target has no spaces or parentheses (the repository's links have none).
MD_LINK_RE = re.compile(r'\]\(([^()\s]+)\)')
#: ``docs/<...>.md`` with an optional ``#anchor``, as written in Python docstrings and comments.
PY_DOCS_REF_RE = re.compile(r'(?<![\w/.-])(docs/[\w./-]+?\.md)(#[\w-]+)?')
FENCE_RE = re.compile(r'^\s*(```|~~~)')


def tracked_files() -> List[str]:
    try:
        out = subprocess.run(['git', 'ls-files', '-z'], cwd=REPO, capture_output=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip('not a git checkout')
    return [p for p in out.decode().split('\0') if p and (REPO / p).is_file()]


def outside_fences(text: str) -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` of the lines of a markdown text outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE_RE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading text (before de-duplication)."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link keeps its text
    text = text.replace('`', '').strip().lower()
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


@lru_cache(maxsize=None)
def anchors(path: Path) -> Set[str]:
    """The heading anchors of a markdown file, de-duplicated as GitHub does."""
    seen: Dict[str, int] = {}
    found = set()
    for _, line in outside_fences(path.read_text(encoding='utf-8')):
        match = re.match(r'^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        if slug in seen:
            seen[slug] += 1
            found.add(f'{slug}-{seen[slug]}')
        else:
            seen[slug] = 0
            found.add(slug)
    return found


def broken(target_file: Path, anchor: str) -> str:
    """Why a reference to ``target_file`` (and ``#anchor`` unless empty) is broken, or ''."""
    if not target_file.exists():
        return 'no such file'
    if anchor:
        if target_file.suffix != '.md' or target_file.is_dir():
            return 'anchor on a file that is not markdown'
        if anchor not in anchors(target_file):
            return f'no heading with anchor #{anchor}'
    return ''


def test_github_slug_rule():
    assert github_slug('2.5 Attention drop') == '25-attention-drop'
    assert github_slug("2 The core's parts") == '2-the-cores-parts'
    assert github_slug('Metrics (all in percent)') == 'metrics-all-in-percent'
    assert github_slug('3.6 Initial pseudo labels: background extraction and POM') == \
        '36-initial-pseudo-labels-background-extraction-and-pom'
    assert github_slug('6.5 manifest.json') == '65-manifestjson'
    assert github_slug('Use `wsss-run`') == 'use-wsss-run'


def test_anchors_of_repeated_headings(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('# Title\n## Configs\n```\n# not a heading\n```\n### Configs\n## Configs ##\n')
    assert anchors(page) == {'title', 'configs', 'configs-1', 'configs-2'}


def test_broken_names_missing_files_and_anchors(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('# Page\n## 2.5 Attention drop\n')
    assert broken(page, '') == '' and broken(page, '25-attention-drop') == ''
    assert broken(page, '25-attention') == 'no heading with anchor #25-attention'
    assert broken(tmp_path / 'other.md', '') == 'no such file'
    assert broken(tmp_path, '') == ''                      # a folder link, no anchor
    assert 'not markdown' in broken(tmp_path, 'x')


def test_old_note_pattern_matches_the_old_forms_only():
    old = ['../' + 'shared' + '/DES' + 'IGN.md', 'see specs' + '/getam_base' + 'line.md',
           'edam_moana' + '.md B.5', '(sp' + 'ec 2.4)', 'Sp' + 'ec A.8 step 2']
    assert all(OLD_NOTE_RE.search(s) for s in old)
    fine = ['wsss_core/hookspecs.py', 'test_bad_specs(', 'docs/methods/edam.md#7-training',
            'shared memory', 'a config spec is a path', 'for spec, summary in rows',
            'ICCV 2019, §3.2']
    assert not any(OLD_NOTE_RE.search(s) for s in fine)


def test_no_reference_to_the_old_notes():
    hits = []
    for rel in tracked_files():
        if rel.startswith('docs/') or not rel.endswith(CHECKED_SUFFIXES):
            continue
        text = (REPO / rel).read_text(encoding='utf-8', errors='replace')
        for number, line in enumerate(text.splitlines(), 1):
            if OLD_NOTE_RE.search(line):
                hits.append(f'{rel}:{number}: {line.strip()}')
    assert not hits, 'references to the old notes (point into docs/ instead):\n' + '\n'.join(hits)


def test_markdown_links_resolve():
    problems = []
    for rel in tracked_files():
        if not rel.endswith('.md'):
            continue
        source = REPO / rel
        for number, line in outside_fences(source.read_text(encoding='utf-8')):
            for target in MD_LINK_RE.findall(line):
                if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):  # http:, mailto:, ...
                    continue
                path, _, anchor = target.partition('#')
                target_file = (source.parent / path).resolve() if path else source
                why = broken(target_file, anchor)
                if why:
                    problems.append(f'{rel}:{number}: ({target}) {why}')
    assert not problems, 'broken markdown links:\n' + '\n'.join(problems)


def test_docs_references_in_python_resolve():
    problems = []
    checked = 0
    for rel in tracked_files():
        if not rel.endswith('.py'):
            continue
        text = (REPO / rel).read_text(encoding='utf-8', errors='replace')
        for number, line in enumerate(text.splitlines(), 1):
            for path, anchor in PY_DOCS_REF_RE.findall(line):
                checked += 1
                why = broken(REPO / path, anchor.lstrip('#'))
                if why:
                    problems.append(f'{rel}:{number}: {path}{anchor} {why}')
    assert not problems, 'broken docs/ references:\n' + '\n'.join(problems)
    assert checked > 0, 'no docs/ reference found in any Python file: is the pattern right?'
