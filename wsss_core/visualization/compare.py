"""The comparison page: ``compare.html`` puts the methods of finished runs side by side.

    wsss-report --compare work_dirs/quickstart work_dirs/oaa_synthetic [--out DIR]

:func:`build_comparison` reads work dirs with the run report's readers
(:mod:`~wsss_core.visualization.report`) and never changes them; it writes
``OUT/compare.html`` and its PNG sheets under ``OUT/compare/`` (``OUT``: the first work dir
unless given).

Methods and roles
-----------------
A *method* names, for each *role*, a stage of one work dir; its figures come from there:

================  ================================================  ==========================
role              stage                                             figures
================  ================================================  ==========================
``classifier``    a classifier's training stage, or an              ``cls/mAP`` (val mAP)
                  EvaluateClassifier of one
``cams``          an EvaluateLabels on CAMs, or the stage whose     ``miou`` at the fixed
                  CAMs it scores (its last evaluation is used)      background threshold and
                                                                    ``oracle_miou`` (best
                                                                    threshold, chosen with the
                                                                    ground truth: flagged)
``labels``        an EvaluateLabels on pseudo labels, or the        ``miou``, ``precision``,
                  stage whose labels it scores                      ``recall``,
                                                                    ``labelled_fraction``,
                                                                    per-class IoU
``segmenter``     a TestSegmentor, or the TrainSegmentor it tests   ``miou_raw`` (``miou``
                                                                    when it ran no CRF),
                                                                    per-class IoU
``segmenter_crf`` a TestSegmentor that ran a CRF (may be the        ``miou_crf``, per-class
                  ``segmenter``'s stage)                            IoU
================  ================================================  ==========================

A work dir whose ``config.py`` has a ``compare`` entry holds the methods it names (roles ->
stage names; a role left out, or ``None``, shows ``-``)::

    compare = dict(
        baseline=dict(classifier='classify', cams='cams', labels='labels_saliency',
                      segmenter='test', segmenter_crf='test'),
        oaa=dict(classifier='oaa_classify', cams='oaa_accumulated', labels='oaa_labels',
                 segmenter='oaa_test', segmenter_crf='oaa_test'))

A work dir without it is one method named after its folder, with roles inferred by
:func:`infer_roles` (the chain that ends in the last segmenter test).  A method is named by
its ``compare`` key or folder; a name that several work dirs give is prefixed with the
folder (``oaa_synthetic/baseline``).

The page
--------
Roles (which stage fills each), headline figures (rows) by method (columns; the best of a
row in bold where higher is better), per-class IoU of the pseudo labels and of the segmenter,
wall time and peak memory (``duration_s``, ``peak_memory_mb`` of the manifests) of every
stage a method reads (its role stages and, transitively, their inputs: shared stages appear
under every method that reads them), and sample sheets.  For every split with per-image
outputs, the first ``num_images`` images of that split of the *first* work dir's data set
get one sheet each, one row per method::

    method | image | ground truth | CAM of each GT class | pseudo labels | DeepLab | DeepLab + CRF

so every method shows the same image ids (a method whose work dir has another data config
is flagged).  A role whose stage did not finish shows its status (``unfinished``,
``not run``), one naming an unknown stage a warning; every text from the work dirs is
HTML-escaped.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ..evaluation.miou_conventions import CONVENTION_RULES
from ..io import atomic_write
from .report import (ORACLE_NOTE, Source, StageInfo, _badge, _cam_cells, _data_cfg, _e,
                     _Files, _label_cell, _legend, _nanmean, _num_cell, _read_json, _row_keys,
                     _safe_name, _table, class_order, collect_stages, fmt_value, input_cells,
                     load_work_dir_config, open_dataset, render_html, save_sheet_png)

__all__ = ['build_comparison', 'load_methods', 'infer_roles', 'resolve_role', 'RunDir',
           'Method', 'Role', 'ROLES', 'COMPARE_HTML', 'COMPARE_DIR']

ROLES = ('classifier', 'cams', 'labels', 'segmenter', 'segmenter_crf')
COMPARE_HTML = 'compare.html'
COMPARE_DIR = 'compare'
#: stage options that never name another stage
_NOT_STAGE_OPTIONS = {'name', 'type', 'split', 'val_split', 'train_split'}


# ============================================================================ reading work dirs
@dataclass
class RunDir:
    """One work dir: its config, its stages (:func:`collect_stages`) and their configs."""
    path: Path
    cfg: object
    cfg_problem: Optional[str]
    stages: List[StageInfo]
    stage_cfgs: Dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path) -> 'RunDir':
        path = Path(path)
        cfg, problem = load_work_dir_config(path)
        cfgs: Dict[str, dict] = {}
        if cfg is not None:
            try:
                from ..config_stages import stage_configs
                cfgs = {str(c['name']): c for c in stage_configs(cfg.get('stages'))
                        if isinstance(c, dict) and c.get('name')}
            except Exception:  # a damaged stages entry: the manifests still tell
                cfgs = {}
        return cls(path, cfg, problem, collect_stages(path, cfg), cfgs)

    @property
    def name(self) -> str:
        return self.path.name

    def get(self, name: Optional[str]) -> Optional[StageInfo]:
        return next((st for st in self.stages if st.name == name), None) if name else None

    def option(self, name: str, key: str):
        return (self.stage_cfgs.get(name) or {}).get(key)

    def upstream(self, name: str) -> List[str]:
        """The stages ``name`` reads: its manifest's ``inputs`` and the options of its config
        whose value (or a list item) is the name of an earlier stage."""
        st = self.get(name)
        out = list(((st.manifest or {}).get('inputs') or {}) if st is not None else {})
        order = [s.name for s in self.stages]
        earlier = set(order[:order.index(name)]) if name in order else set()
        for key, value in (self.stage_cfgs.get(name) or {}).items():
            if key in _NOT_STAGE_OPTIONS:
                continue
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                if isinstance(item, str) and item in earlier and item not in out:
                    out.append(item)
        return out

    def closure(self, names: Iterable[str]) -> Set[str]:
        """``names`` and every stage they read, transitively."""
        seen: Set[str] = set()
        todo = [n for n in names if n]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += self.upstream(name)
        return seen

    def ordered(self, names: Iterable[str]) -> List[str]:
        """``names`` that are stages of this work dir, in pipeline order."""
        names = set(names)
        return [st.name for st in self.stages if st.name in names]

    def data_cfg(self) -> Optional[dict]:
        try:
            return _data_cfg(self.cfg)
        except ValueError:
            return None


# ---------------------------------------------------------------------------- what a stage is
def is_test(run: RunDir, st: StageInfo) -> bool:
    """A segmenter test: type ``TestSegmentor`` or ``miou_raw`` among its metrics."""
    return st.type == 'TestSegmentor' or 'miou_raw' in st.metrics


def has_crf(run: RunDir, st: StageInfo) -> bool:
    """A segmenter test that ran a CRF (``miou_crf``, ``artifacts.crf`` or ``crf=``)."""
    return bool('miou_crf' in st.metrics or st.artifacts.get('crf')
                or st.artifacts.get('predictions_raw')
                or (not st.complete and run.option(st.name, 'crf')))


def is_classifier(run: RunDir, st: StageInfo) -> bool:
    """A finished stage with ``cls/mAP``; an unfinished ``Train*`` stage not a segmenter's."""
    if st.complete:
        return 'cls/mAP' in st.metrics
    return bool(st.type) and st.type.startswith('Train') and 'Segment' not in st.type


def eval_source(run: RunDir, st: StageInfo) -> Optional[str]:
    """The stage an evaluation scores (``artifacts.source``, else its cams= / labels=)."""
    src = st.artifacts.get('source') if st.complete else None
    src = src or run.option(st.name, 'cams') or run.option(st.name, 'labels')
    return str(src) if isinstance(src, str) else None


def eval_kind(run: RunDir, st: StageInfo) -> Optional[str]:
    """``'cams'``, ``'labels'`` or ``'predictions'`` for an evaluation stage, else None.

    A finished one by its metrics (``oracle_miou``: CAMs; ``precision``: labels, or
    predictions when its source is a segmenter test); an unfinished EvaluateLabels by its
    ``cams=`` / ``labels=`` option."""
    if st.complete:
        if 'oracle_miou' in st.metrics:
            return 'cams'
        if 'precision' not in st.metrics:
            return None
    elif st.type != 'EvaluateLabels':
        return None
    elif run.option(st.name, 'cams'):
        return 'cams'
    src = run.get(eval_source(run, st))
    return 'predictions' if src is not None and is_test(run, src) else 'labels'


def _last(stages: Iterable[StageInfo], keep: Callable[[StageInfo], bool]) -> Optional[StageInfo]:
    found = [st for st in stages if keep(st)]
    return found[-1] if found else None


def infer_roles(run: RunDir) -> Dict[str, str]:
    """Role -> stage name for a work dir that holds one method (no ``compare`` entry).

    * ``segmenter``: the last segmenter test (:func:`is_test`); ``segmenter_crf``: that
      stage when it ran a CRF, else the last test that did;
    * ``labels``: the last evaluation of pseudo labels among the stages the segmenter reads
      (transitively; any, without a segmenter);
    * ``cams``: the last evaluation of CAMs among the stages those labels read (any, without
      labels or segmenter);
    * ``classifier``: the last classifier (:func:`is_classifier`) among the stages those
      CAMs read.

    "Reads" follows the manifests' ``inputs`` and the config's options (:meth:`RunDir.upstream`).
    """
    roles: Dict[str, str] = {}
    tests = [st for st in run.stages if is_test(run, st)]
    seg = tests[-1] if tests else None
    crf = seg if seg is not None and has_crf(run, seg) else _last(tests, lambda t: has_crf(run, t))
    if seg is not None:
        roles['segmenter'] = seg.name
    if crf is not None:
        roles['segmenter_crf'] = crf.name
    scope = run.closure([seg.name]) if seg is not None else None

    def within(names):
        return lambda name: names is None or name in names

    labels = _last(run.stages, lambda st: eval_kind(run, st) == 'labels'
                   and within(scope)(eval_source(run, st)))
    if labels is not None:
        roles['labels'] = labels.name
        scope = run.closure([eval_source(run, labels)])
    cams = _last(run.stages, lambda st: eval_kind(run, st) == 'cams'
                 and within(scope)(eval_source(run, st)))
    if cams is not None:
        roles['cams'] = cams.name
        scope = run.closure([eval_source(run, cams)])
    classifier = _last(run.stages, lambda st: is_classifier(run, st) and within(scope)(st.name))
    if classifier is not None:
        roles['classifier'] = classifier.name
    return roles


# ============================================================================ methods
@dataclass
class Role:
    """How a method fills a role: the stage ``named`` (by ``compare`` or inference), the
    ``stage`` holding the figures, the ``source`` whose per-image files are shown, and the
    ``problem`` when one of them cannot be found."""
    role: str
    named: Optional[str] = None
    stage: Optional[StageInfo] = None
    source: Optional[StageInfo] = None
    problem: Optional[str] = None


def resolve_role(run: RunDir, role: str, name: Optional[str]) -> Role:
    """The :class:`Role` for ``role`` = stage ``name`` of ``run`` (see the module doc)."""
    if not name:
        return Role(role)
    st = run.get(name)
    if st is None:
        return Role(role, name, problem=f'{run.name} has no stage {name!r}')
    if role in ('cams', 'labels'):
        if eval_kind(run, st) is not None:
            return Role(role, name, st, run.get(eval_source(run, st)))
        ev = _last(run.stages, lambda e: eval_kind(run, e) is not None
                   and eval_source(run, e) == name)
        return Role(role, name, ev, st, None if ev else f'no evaluation of {name!r} in {run.name}')
    if role in ('segmenter', 'segmenter_crf'):
        if is_test(run, st):
            return Role(role, name, st, st)
        test = _last(run.stages, lambda t: is_test(run, t) and name in run.upstream(t.name))
        return Role(role, name, test, test,
                    None if test else f'no segmenter test of {name!r} in {run.name}')
    return Role(role, name, st, st)


@dataclass
class Method:
    """One column of the page: ``key`` in its work dir (``compare`` key or folder name),
    ``name`` on the page (unique), its roles, and whether they were inferred."""
    name: str
    key: str
    run: RunDir
    roles: Dict[str, Role]
    inferred: bool

    def stage_names(self) -> List[str]:
        """Every stage the method reads, in pipeline order (role stages and their inputs)."""
        names = [n for r in self.roles.values()
                 for n in (r.named, r.stage and r.stage.name, r.source and r.source.name) if n]
        return self.run.ordered(self.run.closure(n for n in names if self.run.get(n)))


def _declared_methods(run: RunDir, entry, problems: List[str]) -> List[Method]:
    where = f'{run.name}: compare'
    if not isinstance(entry, dict):
        problems.append(f'{where} must be a dict {{method: dict(role=stage, ...)}}, not '
                        f'{type(entry).__name__}; roles inferred')
        return []
    methods = []
    for key, roles in entry.items():
        if not isinstance(roles, dict):
            problems.append(f'{where}.{key} must be a dict of role=stage, not '
                            f'{type(roles).__name__}; left out')
            continue
        unknown = sorted(str(r) for r in roles if r not in ROLES)
        if unknown:
            problems.append(f'{where}.{key}: unknown role(s) {unknown} ignored (roles: '
                            f'{", ".join(ROLES)})')
        names = {}
        for role in ROLES:
            value = roles.get(role)
            if value is not None and not isinstance(value, str):
                problems.append(f'{where}.{key}.{role} must be a stage name, not {value!r}')
                value = None
            names[role] = value
        methods.append(Method(str(key), str(key), run,
                              {r: resolve_role(run, r, n) for r, n in names.items()}, False))
    if not methods:
        problems.append(f'{where} names no method; roles inferred')
    return methods


def methods_of(run: RunDir, problems: List[str]) -> List[Method]:
    """The methods of one work dir: its ``compare`` entry's, else one inferred."""
    entry = run.cfg.get('compare') if run.cfg is not None else None
    if entry is not None:
        entry = entry.to_dict() if hasattr(entry, 'to_dict') else entry
        methods = _declared_methods(run, entry, problems)
        if methods:
            return methods
    roles = infer_roles(run)
    return [Method(run.name, run.name, run, {r: resolve_role(run, r, roles.get(r))
                                             for r in ROLES}, True)]


def _unique_names(methods: List[Method]) -> None:
    """A key several methods share gets its folder (``run/key``), then ``#2``, ``#3``..."""
    counts = Counter(m.key for m in methods)
    for m in methods:
        m.name = m.key if counts[m.key] == 1 or m.key == m.run.name else f'{m.run.name}/{m.key}'
    seen: Counter = Counter()
    for m in methods:
        seen[m.name] += 1
        if seen[m.name] > 1:
            m.name = f'{m.name} #{seen[m.name]}'


def load_methods(work_dirs: Sequence) -> Tuple[List[Method], List[str]]:
    """``(methods of every work dir in order, problems found reading them)``."""
    problems: List[str] = []
    methods = [m for wd in work_dirs for m in methods_of(RunDir.load(wd), problems)]
    _unique_names(methods)
    for m in methods:
        problems += [f'{m.name}: {r.problem}' for r in m.roles.values() if r.problem]
    return methods, problems


# ============================================================================ cells
def _status(st: StageInfo) -> str:
    """The stage's status (``unfinished``, ``not run``) and why its files are unreadable."""
    text = f'<span class="status-{_safe_name(st.status)}">{_e(st.status)}</span>'
    return text + (f' <span class="warn">({_e(st.problem)})</span>' if st.problem else '')


def _missing(role: Role) -> Optional[str]:
    """The cell of a role without figures (``-``, a warning, a status), None if it has some."""
    if role.stage is None:
        if role.problem:
            return f'<span class="warn" title="{_e(role.problem)}">- ({_e(role.problem)})</span>'
        return '-'
    if not role.stage.complete:
        return f'{_e(role.stage.name)}: {_status(role.stage)}'
    return None


def _value(role: Role, keys: Sequence[str]):
    if role.stage is None or not role.stage.complete:
        return None
    return next((role.stage.metrics[k] for k in keys if k in role.stage.metrics), None)


def _metric_cell(role: Role, keys: Sequence[str], at: Optional[str], best: bool) -> str:
    missing = _missing(role)
    if missing is not None:
        return missing
    value = _value(role, keys)
    metrics = role.stage.metrics
    cell = _num_cell(value, keys[0])
    if best:
        cell = f'<b class="best">{cell}</b>'
    if 'miou' in keys[0] and value is not None and metrics.get('miou_convention'):
        cell += f' <span class="note">[{_e(metrics["miou_convention"])}]</span>'
    if at and isinstance(metrics.get(at), (int, float)):
        cell += f' <span class="note">@ bg {_e(fmt_value("threshold", metrics[at]))}</span>'
    return cell


#: (row label, role, metric keys (first found), threshold key, higher is better, oracle)
_HEADLINE = (
    ('classifier: val mAP', 'classifier', ('cls/mAP',), None, True, False),
    ('CAMs: mIoU at the fixed background threshold', 'cams', ('miou',), 'threshold', True,
     False),
    ('CAMs: mIoU at the best threshold', 'cams', ('oracle_miou',), 'oracle_threshold', True,
     True),
    ('pseudo labels: mIoU', 'labels', ('miou',), None, True, False),
    ('pseudo labels: precision (labelled pixels)', 'labels', ('precision',), None, True, False),
    ('pseudo labels: recall', 'labels', ('recall',), None, True, False),
    ('pseudo labels: labelled fraction', 'labels', ('labelled_fraction',), None, False, False),
    ('DeepLab: mIoU, raw', 'segmenter', ('miou_raw', 'miou'), None, True, False),
    ('DeepLab: mIoU, CRF', 'segmenter_crf', ('miou_crf',), None, True, False),
)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


# ============================================================================ sections
def runs_section(methods: Sequence[Method], problems: Sequence[str]) -> str:
    runs: Dict[Path, List[Method]] = {}
    for m in methods:
        runs.setdefault(m.run.path, []).append(m)
    rows = []
    for path, ms in runs.items():
        run = ms[0].run
        env, _ = _read_json(path / 'env.json')
        commit = str(env.get('git_commit') or '')[:10] if isinstance(env, dict) else ''
        done = sum(st.complete for st in run.stages)
        rows.append([f'<code>{_e(path)}</code>', _e(', '.join(m.name for m in ms)),
                     _e(f'{done} of {len(run.stages)}'), _e(commit)])
    out = [f'<h1>wsss comparison: {len(methods)} method(s) from {len(runs)} work dir(s)</h1>',
           _table(['work dir', 'methods', 'stages finished', 'commit'], rows),
           f'<p class="note">{_e(ORACLE_NOTE)}</p>']
    if problems:
        out.append('<div class="warn problems"><b>Problems:</b><ul>'
                   + ''.join(f'<li>{_e(p)}</li>' for p in problems) + '</ul></div>')
    return ''.join(out)


def roles_section(methods: Sequence[Method]) -> str:
    def cell(role: Role) -> str:
        if role.named is None:
            return '-'
        text = _e(role.named)
        if role.stage is not None and role.stage.name != role.named:
            text += f' &rarr; {_e(role.stage.name)}'
        if role.problem:
            text += f' <span class="warn">({_e(role.problem)})</span>'
        elif role.stage is not None and not role.stage.complete:
            text += f' ({_status(role.stage)})'
        return text

    rows = [['<i>from</i>', *(('inferred' if m.inferred else 'compare entry') for m in methods)]]
    rows += [[_e(r), *(cell(m.roles[r]) for m in methods)] for r in ROLES]
    return ('<h2 id="roles">Methods: the stage behind each figure</h2><p class="note">'
            '&rarr;: the evaluation or test of the named stage that gives the figures.</p>'
            + _table(['role', *(m.name for m in methods)], rows, 'roles'))


def headline_section(methods: Sequence[Method]) -> str:
    rows = []
    for label, role, keys, at, higher, oracle in _HEADLINE:
        values = [_value(m.roles[role], keys) for m in methods]
        numbers = [v for v in values if _is_number(v)]
        top = max(numbers) if higher and len(numbers) > 1 else None
        rows.append([_e(label) + (' ' + _badge() if oracle else ''),
                     *(_metric_cell(m.roles[role], keys, at, top is not None and v == top)
                       for m, v in zip(methods, values))])
    rows.append(['wall time, all stages of the method', *(_total_time(m) for m in methods)])
    rows.append(['peak memory, highest stage', *(_top_memory(m) for m in methods)])
    conventions = '; '.join(f'<i>{_e(k)}</i>: {_e(v)}' for k, v in CONVENTION_RULES.items())
    return ('<h2 id="headline">Headline figures</h2><p class="note">Fractions; bold: the best '
            'of the row. Each mIoU is under the convention in brackets (' + conventions
            + '). Wall time and memory: see the stage table below.</p>'
            + _table(['', *(m.name for m in methods)], rows, 'headline'))


def _class_iou(role: Role, part: str) -> Optional[dict]:
    """``{class: IoU}`` of ``detail[part]['iou']`` of the role's finished stage."""
    st = role.stage
    if st is None or not st.complete:
        return None
    value = (st.detail or {}).get(part)
    iou = value.get('iou') if isinstance(value, dict) else None
    return iou if isinstance(iou, dict) else None


def per_class_section(methods: Sequence[Method]) -> str:
    cols, absent = [], []
    for m in methods:
        labels = _class_iou(m.roles['labels'], 'confusion')
        crf = _class_iou(m.roles['segmenter_crf'], 'crf')
        seg = crf if crf is not None else _class_iou(m.roles['segmenter'], 'raw')
        cols += [(f'{m.name}: pseudo labels', labels)] if labels is not None else []
        cols += [(f'{m.name}: DeepLab' + (' + CRF' if crf is not None else ' raw'), seg)] \
            if seg is not None else []
        lacking = [w for w, iou in (('pseudo labels', labels), ('DeepLab', seg)) if iou is None]
        if lacking:
            absent.append(f'{m.name} ({" and ".join(lacking)})')
    if not cols:
        return '<h2 id="per-class">Per-class IoU</h2><p>No finished stage gave per-class IoU.</p>'
    names: List[str] = []
    for m in methods:
        names += [n for n in class_order(m.run.stages) if n not in names]
    keys = _row_keys(names, (c[1] for c in cols))
    rows = [[_e(k), *(_num_cell(c[1].get(k)) for c in cols)] for k in keys]
    rows.append(['<b>mIoU [union] (nan-mean of the column)</b>',
                 *(_num_cell(_nanmean(c[1].values())) for c in cols)])
    note = ('<p class="note">n/a: class absent from ground truth and prediction (left out of '
            'the mean).' + (' No per-class IoU: ' + _e(', '.join(absent)) + '.'
                            if absent else '') + '</p>')
    return ('<h2 id="per-class">Per-class IoU</h2>' + note
            + _table(['class', *(c[0] for c in cols)], rows, 'perclass'))


def _duration(seconds: float) -> str:
    return f'{seconds:.1f} s' if seconds < 120 else f'{seconds / 60:.1f} min'


def _memory(st: StageInfo) -> str:
    peak = (st.manifest or {}).get('peak_memory_mb')
    parts = [f'{k} {v:.0f} MiB' for k, v in sorted(peak.items()) if _is_number(v)] \
        if isinstance(peak, dict) else []
    return ', '.join(parts) or 'memory not recorded'


def _time_cell(st: Optional[StageInfo]) -> str:
    if st is None:
        return ''
    if not st.complete:
        return _status(st)
    dur = (st.manifest or {}).get('duration_s')
    dur = _duration(float(dur)) if _is_number(dur) else 'time not recorded'
    return f'{_e(dur)}<br><span class="note">{_e(_memory(st))}</span>'


def _total_time(m: Method) -> str:
    stages = [m.run.get(n) for n in m.stage_names()]
    done = [(st.manifest or {}).get('duration_s') for st in stages if st.complete]
    total = sum(float(d) for d in done if _is_number(d))
    pending = len(stages) - len(done)
    if not stages:
        return '-'
    return _e(_duration(total) + (f' ({pending} stage(s) not finished)' if pending else ''))


def _top_memory(m: Method) -> str:
    if not m.stage_names():
        return '-'
    peaks: Dict[str, float] = {}
    for n in m.stage_names():
        peak = (m.run.get(n).manifest or {}).get('peak_memory_mb')
        for k, v in (peak.items() if isinstance(peak, dict) else ()):
            if _is_number(v):
                peaks[k] = max(peaks.get(k, v), v)
    return _e(', '.join(f'{k} {v:.0f} MiB' for k, v in sorted(peaks.items()))
              or 'not recorded')


def time_section(methods: Sequence[Method]) -> str:
    per = [(m, m.stage_names()) for m in methods]
    order: List[str] = []
    for _, names in per:
        order += [n for n in names if n not in order]
    if not order:
        return ''
    rows = [[_e(n), *(_time_cell(m.run.get(n)) if n in names else '' for m, names in per)]
            for n in order]
    rows.append(['<b>total</b>', *(_total_time(m) for m in methods)])
    return ('<h2 id="time">Wall time and peak memory per stage</h2><p class="note">Each stage '
            "a method reads (its role stages and their inputs), from the manifests' "
            '<code>duration_s</code> and <code>peak_memory_mb</code> (rss: the stage '
            "process's resident set; cuda: the allocator's peak). A stage several methods "
            'share (same work dir) ran once and is counted in each total; an empty cell: the '
            'method does not read that stage.</p>'
            + _table(['stage', *(m.name for m in methods)], rows, 'times'))


# ---------------------------------------------------------------------------- samples
#: (role, column title, artifact keys (first found)); CAMs get one column per GT class
_SAMPLE_SLOTS = (('cams', 'CAM', ('cams',)), ('labels', 'pseudo labels', ('labels',)),
                 ('segmenter', 'DeepLab', ('predictions_raw', 'predictions')),
                 ('segmenter_crf', 'DeepLab + CRF', ('predictions',)))


def method_sources(m: Method) -> Dict[str, Source]:
    """Role -> the per-image outputs the sample sheets show (finished stages only)."""
    out = {}
    for role, title, keys in _SAMPLE_SLOTS:
        st = m.roles[role].source
        if st is None or not st.complete or (role == 'segmenter_crf' and not has_crf(m.run, st)):
            continue
        sub = next((st.artifacts[k] for k in keys if isinstance(st.artifacts.get(k), str)), None)
        if sub is not None:
            split = st.artifacts.get('split')
            out[role] = Source(f'{m.name} {title} ({st.name})', role, m.run.path / st.name / sub,
                               str(split) if split is not None else None)
    return out


def _sample_rows(sample: dict, members, slots: List[str], names: List[str]):
    """``(rows, titles, row labels, notes)`` of one image's sheet (layout: module doc)."""
    head, classes = input_cells(sample, names)
    img, img_id = sample['img'], head.img_id
    titles = [c.title for c in head.cells]
    for role, title, _ in _SAMPLE_SLOTS:
        if role in slots:
            titles += ([f'CAM {names[c] if c < len(names) else c}' for c in classes]
                       if role == 'cams' else [title])
    rows, notes = [], list(head.notes)
    for m, sources in members:
        row = [c.image for c in head.cells]
        for role in slots:
            src = sources.get(role)
            if role == 'cams':
                cells, missing = (_cam_cells(img, classes, src, img_id, names, '', extra=False)
                                  if src is not None else ([None] * len(classes), []))
                row += [getattr(c, 'image', None) for c in cells]
            else:
                cell, note = _label_cell(img, src, img_id) if src is not None else (None, None)
                row.append(getattr(cell, 'image', None))
                missing = [note] if note else []
            notes += missing
        rows.append(row)
    return rows, titles, [m.name for m, _ in members], notes


def _split_sheets(split, members, slots, ref: RunDir, names: List[str], num_images: int,
                  files: _Files, cell_size: int) -> str:
    label = split or 'default split'
    try:
        dataset = open_dataset(_data_cfg(ref.cfg), split, num_images)
        if not names:
            names[:] = ['background', *map(str, getattr(dataset, 'class_names', ()))]
        figures = []
        for index in range(min(num_images, len(dataset))):
            sample = dataset.load_sample(index)
            rows, titles, row_labels, notes = _sample_rows(sample, members, slots, names)
            img_id = str(sample['img_id'])
            src = save_sheet_png(rows, titles, files.path('sample', split or 'default', img_id),
                                 files, cell_size, row_labels=row_labels)
            figures.append(f'<figure><img class="sheet" src="{_e(src)}" alt="{_e(img_id)}">'
                           f'<figcaption>{_e("; ".join([img_id, *notes]))}</figcaption></figure>')
    except Exception as exc:  # the tables are still worth writing
        return (f'<h3>split: {_e(label)}</h3><p class="warn">Images unavailable: '
                f'{_e(type(exc).__name__)}: {_e(exc)}</p>')
    shown = ', '.join(m.name for m, _ in members)
    return (f'<h3>split: {_e(label)}</h3><p class="note">Rows: {_e(shown)}. Gray cells: the '
            'method has no such output on this split (or its file is missing).</p>'
            + ''.join(figures))


def samples_section(methods: Sequence[Method], num_images: int, files: _Files,
                    cell_size: int) -> str:
    sources = [(m, method_sources(m)) for m in methods]
    splits: List[Optional[str]] = []
    for _, srcs in sources:
        for src in srcs.values():
            if src.split not in splits:
                splits.append(src.split)
    if num_images <= 0 or not splits:
        why = 'num_images is 0' if num_images <= 0 else \
            'no finished role stage produced CAMs, labels or predictions'
        return f'<h2 id="samples">Samples</h2><p>No sample images: {_e(why)}.</p>'
    ref = next((m.run for m in methods if m.run.data_cfg() is not None), None)
    if ref is None:
        why = methods[0].run.cfg_problem or "no config.py with a 'data' entry"
        return f'<h2 id="samples">Samples</h2><p class="warn">Images unavailable: {_e(why)}.</p>'
    names = class_order(ref.stages)
    notes = [f'{m.name}: its work dir has another data config than {ref.name}; its outputs are '
             f'shown on {ref.name}\'s images by image id' for m in methods
             if m.run is not ref and m.run.data_cfg() != ref.data_cfg()]
    body = []
    for split in splits:
        members = [(m, {r: s for r, s in srcs.items() if s.split == split})
                   for m, srcs in sources]
        members = [(m, srcs) for m, srcs in members if srcs]
        slots = [role for role, _, _ in _SAMPLE_SLOTS if any(role in s for _, s in members)]
        body.append(_split_sheets(split, members, slots, ref, names, num_images, files,
                                  cell_size))
    warn = ''.join(f'<p class="warn">{_e(n)}</p>' for n in notes)
    return (f'<h2 id="samples">Samples</h2><p class="note">The first {num_images} image(s) of '
            f'each split of {_e(ref.name)}\'s data set, the same ids for every method.</p>'
            f'{warn}{_legend(names)}' + ''.join(body))


# ============================================================================ the page
_CSS = 'b.best .num { font-weight: bold; } div.problems { font-size: 13px; }'


def build_comparison(work_dirs: Sequence, out_dir=None, num_images: int = 6,
                     cell_size: int = 128) -> Path:
    """Write ``out_dir/compare.html`` and its PNGs under ``out_dir/compare/``; return the path.

    Args:
        work_dirs: the work dirs to compare (each one or more methods, see the module doc).
        out_dir: where the page goes (created if needed); default the first work dir.
        num_images: sample images per split (the first ones of the split); 0 for none.
        cell_size: pixel size of one cell of a sample sheet.

    Raises:
        FileNotFoundError: a work dir is not a directory.
        ValueError: no work dir given.
    """
    work_dirs = [Path(wd) for wd in work_dirs]
    if not work_dirs:
        raise ValueError('build_comparison needs at least one work dir')
    for wd in work_dirs:
        if not wd.is_dir():
            raise FileNotFoundError(f'work dir not found: {wd}')
    out_dir = Path(out_dir) if out_dir is not None else work_dirs[0]
    methods, problems = load_methods(work_dirs)
    files = _Files(out_dir, COMPARE_DIR)
    files.dir.mkdir(parents=True, exist_ok=True)
    sections = [runs_section(methods, problems), roles_section(methods),
                headline_section(methods), per_class_section(methods), time_section(methods),
                samples_section(methods, int(num_images), files, int(cell_size))]
    out = out_dir / COMPARE_HTML
    title = 'wsss comparison: ' + ', '.join(m.name for m in methods)
    with atomic_write(out, 'w') as fh:
        fh.write(render_html(out_dir, sections, title=title, css=_CSS))
    files.remove_stale()
    return out
