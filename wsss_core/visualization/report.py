"""The run report: ``work_dir/report.html`` plus PNG sheets and plots under ``work_dir/report/``.

:func:`build_report` reads what a run left in its work dir and never changes it (apart from
``report.html`` and ``report/``):

* ``config.py`` (stage order, the data config), ``summary.json`` (how each stage last ran),
  each ``<stage>/manifest.json`` (type, metrics, counts, artifacts) and, where present,
  ``<stage>/metrics.json`` (per-class IoU, pseudo-label precision / recall, the CAM
  background-threshold curve);
* the artifacts of finished stages: CAMs (``artifacts.cams``, ``.npz``), pseudo labels
  (``artifacts.labels``) and segmentation predictions (``artifacts.predictions``), both PNG;
* ``<stage>/<timestamp>/vis_data/scalars.json`` of mmengine training stages (loss curves).

The HTML shows the stage list (stages that did not finish are listed as ``unfinished`` or
``not run``), the headline metrics (oracle figures flagged: they choose the threshold with
the ground truth), per-class tables, plots, and for the first ``num_images`` images of every
split that has CAMs / labels / predictions one sheet each::

    image | ground truth | CAM overlay of each class (titled with its name) | each label stage

It is self-contained apart from relative links to the PNGs, and every text from the work dir
is HTML-escaped. Images come from the dataset in ``config.py``; its type must be registered
(the core is registered here; ``wsss-report`` also loads the plugins).
"""
from __future__ import annotations

import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import quote

import numpy as np

from ..evaluation.miou_conventions import CONVENTION_RULES, convention_label
from ..io import atomic_write, load_cam, read_label_png
from ..pipeline.artifacts import PRETRAINED
from .palette import voc_palette

__all__ = ['build_report', 'collect_stages', 'StageInfo', 'REPORT_HTML', 'REPORT_DIR',
           'ORACLE_NOTE']

REPORT_HTML = 'report.html'
REPORT_DIR = 'report'
ORACLE_NOTE = ('Figures marked "oracle" pick the CAM background threshold with the ground truth '
               '(the best of a sweep): an upper bound for comparison, not a weakly supervised '
               'result.')
SOURCE_KINDS = ('cams', 'labels', 'predictions')
_RESERVED_DIRS = {REPORT_DIR}


# ============================================================================ reading the work dir
@dataclass
class StageInfo:
    """What the work dir says about one stage.

    ``status`` is ``'complete'`` (manifest written), ``'unfinished'`` (started, no manifest:
    interrupted or still running) or ``'not run'`` (in the config only); ``last_run`` is the
    runner's word from ``summary.json`` (``ran``, ``skipped``, ``reused``, ``resumed``,
    ``not selected``).
    """
    name: str
    type: Optional[str] = None
    status: str = 'not run'
    last_run: Optional[str] = None
    manifest: Optional[dict] = None
    detail: Optional[dict] = None          # metrics.json
    problem: Optional[str] = None          # unreadable files

    @property
    def complete(self) -> bool:
        return self.status == 'complete'

    @property
    def artifacts(self) -> dict:
        return (self.manifest or {}).get('artifacts') or {}

    @property
    def metrics(self) -> dict:
        return (self.manifest or {}).get('metrics') or {}


def _read_json(path: Path) -> Tuple[Optional[object], Optional[str]]:
    """``(data, None)``, ``(None, None)`` if the file is absent, ``(None, why)`` if unreadable."""
    if not path.is_file():
        return None, None
    try:
        with open(path, encoding='utf-8') as fh:
            return json.load(fh), None
    except (OSError, ValueError) as exc:
        return None, f'cannot read {path.name}: {exc}'


def load_work_dir_config(work_dir: Path):
    """``(Config or None, problem or None)`` from ``work_dir/config.py``."""
    path = Path(work_dir) / 'config.py'
    if not path.is_file():
        return None, 'no config.py in the work dir'
    try:
        from mmengine.config import Config
        return Config.fromfile(str(path)), None
    except Exception as exc:  # a broken config must not stop the report
        return None, f'cannot read config.py: {type(exc).__name__}: {exc}'


def _stage_order(work_dir: Path, cfg, summary) -> List[Tuple[str, Optional[str]]]:
    """``(name, type)`` of every stage: config order, then summary, then other stage dirs."""
    order: Dict[str, Optional[str]] = {}
    for scfg in (cfg.get('stages') or []) if cfg is not None else []:
        if isinstance(scfg, dict) and scfg.get('name'):
            order.setdefault(str(scfg['name']), scfg.get('type'))
    for entry in summary if isinstance(summary, list) else []:
        if isinstance(entry, dict) and entry.get('stage'):
            order.setdefault(str(entry['stage']), entry.get('type'))
    for d in sorted(p for p in work_dir.iterdir() if p.is_dir()):
        if d.name.startswith('.') or d.name in _RESERVED_DIRS:
            continue
        if (d / 'manifest.json').is_file() or (d / 'state.json').is_file():
            order.setdefault(d.name, None)
    return list(order.items())


def _stage_info(work_dir: Path, name: str, type_: Optional[str], last_run) -> StageInfo:
    info = StageInfo(name, type_, last_run=last_run)
    stage_dir = work_dir / name
    manifest, problem = _read_json(stage_dir / 'manifest.json')
    if isinstance(manifest, dict) and manifest.get('status') == 'complete':
        info.manifest, info.status = manifest, 'complete'
        info.type = manifest.get('type') or type_
        metrics_file = info.artifacts.get('metrics')
        if isinstance(metrics_file, str):
            detail, problem = _read_json(stage_dir / metrics_file)
            info.detail = detail if isinstance(detail, dict) else None
    elif stage_dir.is_dir() and ((stage_dir / 'state.json').is_file() or manifest is not None):
        info.status = 'unfinished'
    info.problem = problem
    return info


def collect_stages(work_dir, cfg=None) -> List[StageInfo]:
    """Every stage of the work dir in pipeline order (see :class:`StageInfo`)."""
    work_dir = Path(work_dir)
    summary, _ = _read_json(work_dir / 'summary.json')
    last_run = {e.get('stage'): e.get('status') for e in summary or [] if isinstance(e, dict)}
    return [_stage_info(work_dir, name, type_, last_run.get(name))
            for name, type_ in _stage_order(work_dir, cfg, summary)]


def class_order(stages: Sequence[StageInfo]) -> List[str]:
    """``['background', *class_names]`` from the first manifest that names the run's classes.

    A ``Pretrain`` stage's record names its pretraining corpus's classes (the ShapeCorpus's
    96, not the run's data set's), so a stage whose artifacts are pretrained backbone weights
    is passed over."""
    for st in stages:
        if PRETRAINED.name in (st.artifacts.get('kinds') or ()):
            continue
        names = st.artifacts.get('class_names')
        if isinstance(names, list) and names:
            return ['background', *map(str, names)]
    return []


# ============================================================================ formatting helpers
def _e(value) -> str:
    return html.escape(str(value), quote=True)


def fmt_value(key: str, value) -> str:
    """Numbers as shown in the report: thresholds short, fractions with 4 decimals."""
    if value is None:
        return 'n/a'
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return 'nan'
    return f'{value:g}' if 'threshold' in key else f'{value:.4f}'


def _is_oracle(key: str) -> bool:
    return 'oracle' in key.lower()


def _badge(text: str = 'oracle') -> str:
    return f'<span class="badge" title="{_e(ORACLE_NOTE)}">{_e(text)}</span>'


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = '') -> str:
    """An HTML table; ``head`` is escaped, row cells are HTML already."""
    out = [f'<table class="{cls}">' if cls else '<table>', '<thead><tr>']
    out += [f'<th>{_e(h)}</th>' for h in head]
    out.append('</tr></thead><tbody>')
    for row in rows:
        out.append('<tr>' + ''.join(f'<td>{c}</td>' for c in row) + '</tr>')
    out.append('</tbody></table>')
    return ''.join(out)


def _src(path: Path, work_dir: Path) -> str:
    """A relative, URL-quoted ``src`` for a file inside the work dir."""
    return quote(path.relative_to(work_dir).as_posix())


def _safe_name(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]+', '_', text).strip('._') or 'x'


class _Files:
    """Writes a page's PNGs under ``work_dir/subdir`` (``report/`` by default) and remembers
    them; ``src`` attributes are relative to ``work_dir``, where the page is."""

    def __init__(self, work_dir: Path, subdir: str = REPORT_DIR):
        self.work_dir = work_dir
        self.dir = work_dir / subdir
        self.written: List[Path] = []

    def path(self, *parts: str) -> Path:
        return self.dir / ('_'.join(_safe_name(p) for p in parts) + '.png')

    def write_bytes(self, path: Path, data: bytes) -> str:
        with atomic_write(path) as fh:
            fh.write(data)
        self.written.append(path)
        return _src(path, self.work_dir)

    def remove_stale(self) -> None:
        """Delete PNGs of earlier reports that this one does not reference."""
        keep = {p.resolve() for p in self.written}
        for p in self.dir.glob('*.png'):
            if p.resolve() not in keep:
                p.unlink()


# ============================================================================ sections: tables
def stages_section(stages: Sequence[StageInfo]) -> str:
    rows = []
    for st in stages:
        m = st.manifest or {}
        counts = ', '.join(f'{_e(k)}: {_e(v)}' for k, v in sorted((m.get('counts') or {}).items()))
        dur = m.get('duration_s')
        status = f'<span class="status-{_safe_name(st.status)}">{_e(st.status)}</span>'
        if st.problem:
            status += f'<br><span class="warn">{_e(st.problem)}</span>'
        rows.append([_e(st.name), _e(st.type or '?'), status, _e(st.last_run or ''),
                     _e(f'{dur:.1f} s') if isinstance(dur, (int, float)) else '', counts])
    body = _table(['stage', 'type', 'status', 'last run', 'duration', 'counts'], rows)
    pending = [st for st in stages if not st.complete]
    note = ''
    if pending:
        items = ', '.join(f'{_e(st.name)} ({_e(st.status)})' for st in pending)
        note = f'<p class="warn">Stages that did not finish: {items}.</p>'
    return f'<h2 id="stages">Stages</h2>{note}{body}'


def _flat_metrics(metrics: dict) -> List[Tuple[str, object]]:
    """``(key, value)`` sorted, a nested dict's entries as ``key.sub`` (e.g.
    ``miou_by_convention.union``)."""
    flat = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat += [(f'{key}.{sub}', v) for sub, v in value.items()]
        else:
            flat.append((key, value))
    return sorted(flat, key=lambda kv: kv[0])


def _miou_note() -> str:
    rules = '; '.join(f'<i>{_e(k)}</i>: {_e(v)}' for k, v in CONVENTION_RULES.items())
    return ('IoU figures are fractions; pixels with ground truth 255 are ignored. '
            '<code>miou</code> and <code>oracle_miou</code> use the stage\'s '
            '<code>miou_convention</code> (' + rules + '); <code>miou_by_convention</code> '
            'gives all three, <code>fw_iou</code> the frequency-weighted IoU. A stage '
            'without <code>miou_convention</code> was scored before conventions existed, '
            'with <i>union</i>.')


def metrics_section(stages: Sequence[StageInfo]) -> str:
    rows = []
    for st in stages:
        for key, value in _flat_metrics(st.metrics):
            label = _e(key) + (' ' + _badge() if _is_oracle(key) else '')
            rows.append([_e(st.name), label, _num_cell(value, key)])
    if not rows:
        return '<h2 id="metrics">Metrics</h2><p>No finished stage reported metrics.</p>'
    return ('<h2 id="metrics">Metrics</h2><p class="note">Metrics marked oracle use the '
            'ground truth to choose the threshold (see above). ' + _miou_note() + '</p>'
            + _table(['stage', 'metric', 'value'], rows, 'metrics'))


def _iou_columns(st: StageInfo) -> List[Tuple[str, dict, bool]]:
    """``(column title, {class: IoU}, oracle?)`` for every per-class IoU dict of a stage."""
    detail = st.detail or {}
    cols = []
    if isinstance(detail.get('iou'), dict):
        cols.append((st.name, detail['iou'], False))
    for key, value in detail.items():
        if not isinstance(value, dict):
            continue
        if isinstance(value.get('iou'), dict):
            title = st.name
            if key == 'fixed' and 'threshold' in st.metrics:
                title += f" (bg {fmt_value('threshold', st.metrics['threshold'])})"
            elif key not in ('confusion', 'fixed'):
                title += f' ({key})'
            cols.append((title, value['iou'], _is_oracle(key) or bool(value.get('oracle'))))
    return cols


def _row_keys(names: List[str], dicts: Iterable[dict]) -> List[str]:
    extra = sorted({k for d in dicts for k in d} - set(names))
    return [*names, *extra]


def _num_cell(value, key: str = '') -> str:
    return f'<span class="num">{_e(fmt_value(key, value))}</span>'


def per_class_section(stages: Sequence[StageInfo], names: List[str]) -> str:
    cols = [c for st in stages if st.complete for c in _iou_columns(st)]
    out = []
    if cols:
        keys = _row_keys(names, (c[1] for c in cols))
        rows = [[_e(k), *(_num_cell(c[1].get(k)) for c in cols)] for k in keys]
        rows.append(['<b>mIoU [union] (nan-mean of the column)</b>',
                     *(_num_cell(_nanmean(c[1].values())) for c in cols)])
        head = [c[0] + (' [oracle]' if c[2] else '') for c in cols]
        out.append('<h2 id="per-class">Per-class IoU</h2>'
                   '<p class="note">n/a: class absent from ground truth and prediction '
                   '(left out of the mean).</p>' + _table(['class', *head], rows, 'perclass'))
    out.append(_precision_recall(stages, names))
    return ''.join(out)


def _nanmean(values) -> Optional[float]:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else None


def _per_class_pr(st: StageInfo, names: List[str]) -> Optional[dict]:
    """``{class name: {precision, recall}}`` of a pseudo-label stage (index keys mapped)."""
    per = ((st.detail or {}).get('quality') or {}).get('per_class')
    if not isinstance(per, dict):
        return None
    out = {}
    for key, value in per.items():
        if str(key).isdigit() and int(key) < len(names):
            key = names[int(key)]
        out[str(key)] = value if isinstance(value, dict) else {}
    return out


def _precision_recall(stages: Sequence[StageInfo], names: List[str]) -> str:
    cols = [(st.name, pr) for st in stages if st.complete
            for pr in [_per_class_pr(st, names)] if pr]
    if not cols:
        return ''
    keys = _row_keys(names, (c[1] for c in cols))
    rows = [[_e(k), *(cell for c in cols for cell in (
        _num_cell(c[1].get(k, {}).get('precision')), _num_cell(c[1].get(k, {}).get('recall'))))]
        for k in keys]
    head = ['class', *(f'{c[0]} {w}' for c in cols for w in ('precision', 'recall'))]
    return ('<h3>Pseudo-label precision / recall per class</h3><p class="note">precision: '
            'share of the pixels labelled c that are c; recall: share of the pixels of c '
            'labelled c (ignored pixels count as missed).</p>' + _table(head, rows, 'perclass'))


# ============================================================================ sections: plots
def _figure():
    from matplotlib.figure import Figure  # Agg canvas, no pyplot global state
    return Figure(figsize=(5.0, 3.0), dpi=100, layout='tight')


def _png_bytes(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    return buf.getvalue()


def _curve_points(detail: dict) -> List[Tuple[float, float]]:
    """``[(threshold, mIoU)]`` from ``curve`` as pairs or as ``{threshold, miou}`` dicts."""
    pts = []
    for item in detail.get('curve') or []:
        if isinstance(item, dict):
            t, v = item.get('threshold'), item.get('miou')
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            t, v = item
        else:
            continue
        if isinstance(t, (int, float)) and isinstance(v, (int, float)):
            pts.append((float(t), float(v)))
    return sorted(pts)


def _plot_curve(st: StageInfo, pts, files: _Files) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='o', ms=3, label='mIoU')
    fixed, best = st.metrics.get('threshold'), st.metrics.get('oracle_threshold')
    if isinstance(fixed, (int, float)):
        ax.axvline(fixed, color='tab:green', ls='--', label=f'fixed bg {fixed:g}')
    if isinstance(best, (int, float)):
        ax.axvline(best, color='tab:red', ls=':', label=f'oracle best {best:g} (uses GT)')
    ax.set_xlabel('background threshold')
    ax.set_ylabel(convention_label(st.metrics.get('miou_convention')))
    ax.set_title(f'{st.name}: CAM mIoU vs background threshold', fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return files.write_bytes(files.path('curve', st.name), _png_bytes(fig))


def curve_section(stages: Sequence[StageInfo], files: _Files) -> str:
    parts = []
    for st in stages:
        pts = _curve_points(st.detail or {}) if st.complete else []
        if not pts:
            continue
        best = st.metrics.get('oracle_threshold')
        fixed = st.metrics.get('threshold')
        cells = []
        for t, v in pts:
            tag = ' class="oracle"' if best is not None and math.isclose(t, best) else (
                ' class="fixed"' if fixed is not None and math.isclose(t, fixed) else '')
            cells.append((f'<th{tag}>{_e(fmt_value("threshold", t))}</th>',
                          f'<td{tag}>{_e(fmt_value("miou", v))}</td>'))
        table = ('<table class="curve"><tr><th>threshold</th>' + ''.join(c[0] for c in cells)
                 + f'</tr><tr><th>{_e(convention_label(st.metrics.get("miou_convention")))}'
                 + '</th>' + ''.join(c[1] for c in cells) + '</tr></table>')
        src = _plot_curve(st, pts, files)
        parts.append(f'<h3>{_e(st.name)} {_badge()}</h3><p class="note">Green: the fixed '
                     'threshold a weakly supervised method may report. Red: the oracle best, '
                     f'chosen with the ground truth.</p><img class="plot" src="{_e(src)}" '
                     f'alt="{_e(st.name)} threshold curve">{table}')
    if not parts:
        return ''
    return '<h2 id="threshold">CAM background threshold sweep</h2>' + ''.join(parts)


def _scalars_file(stage_dir: Path) -> Optional[Path]:
    """The newest mmengine ``<timestamp>/vis_data/scalars.json`` of a training stage."""
    found = sorted(stage_dir.glob('*/vis_data/scalars.json')) if stage_dir.is_dir() else []
    return found[-1] if found else None


def _read_scalars(path: Path) -> List[dict]:
    rows = []
    for line in path.read_text(encoding='utf-8', errors='replace').splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by an interrupted run
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _loss_keys(keys) -> List[str]:
    """``loss`` and its parts ``loss_*``; a single part equal to the total is left out."""
    parts = sorted(k for k in keys if k.startswith('loss_'))
    total = ['loss'] if 'loss' in keys else []
    return total + parts if len(parts) > 1 or not total else total


def _plot_losses(name: str, rows: List[dict], files: _Files) -> Optional[str]:
    train = [r for r in rows if 'iter' in r and isinstance(r.get('step'), (int, float))]
    keys = _loss_keys({k for r in train for k in r})
    if not keys:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for key in keys:
        pts = [(r['step'], r[key]) for r in train if isinstance(r.get(key), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key, lw=1)
    ax.set_xlabel('iteration')
    ax.set_ylabel('loss')
    ax.set_title(f'{name}: training loss', fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return files.write_bytes(files.path('loss', name), _png_bytes(fig))


def training_section(stages: Sequence[StageInfo], files: _Files) -> str:
    parts = []
    for st in stages:
        path = _scalars_file(files.work_dir / st.name)
        if path is None:
            continue
        src = _plot_losses(st.name, _read_scalars(path), files)
        tb = list(path.parent.glob('events.out.tfevents*'))
        note = (f'<p class="note">TensorBoard: <code>tensorboard --logdir '
                f'{_e(path.parent.relative_to(files.work_dir).as_posix())}</code></p>'
                if tb else '')
        if src:
            parts.append(f'<h3>{_e(st.name)}</h3><img class="plot" src="{_e(src)}" '
                         f'alt="{_e(st.name)} training loss">{note}')
    return '<h2 id="training">Training</h2>' + ''.join(parts) if parts else ''


def stage_sheets_section(stages: Sequence[StageInfo], work_dir: Path) -> str:
    """Sheets written by RenderSheet-like stages (``artifacts.sheet``)."""
    parts = []
    for st in stages:
        sheet = st.artifacts.get('sheet') if st.complete else None
        path = work_dir / st.name / sheet if isinstance(sheet, str) else None
        if path is not None and path.is_file():
            parts.append(f'<h3>{_e(st.name)}</h3><img class="sheet" '
                         f'src="{_e(_src(path, work_dir))}" alt="{_e(st.name)} sheet">')
    return '<h2 id="stage-sheets">Sheets of the run</h2>' + ''.join(parts) if parts else ''


# ============================================================================ sections: samples
@dataclass
class Source:
    """A finished stage whose per-image artifacts are shown: CAMs, labels or predictions."""
    stage: str
    kind: str
    path: Path
    split: Optional[str]


def find_sources(stages: Sequence[StageInfo], work_dir: Path) -> List[Source]:
    out = []
    for st in stages:
        if not st.complete:
            continue
        for kind in SOURCE_KINDS:
            sub = st.artifacts.get(kind)
            if isinstance(sub, str):
                split = st.artifacts.get('split')
                out.append(Source(st.name, kind, work_dir / st.name / sub,
                                  str(split) if split is not None else None))
    return out


def open_dataset(data_cfg: dict, split: Optional[str], num_images: int):
    """The dataset of ``config.py`` for ``split``, its first ``num_images`` samples only."""
    from ..registry import DATASETS
    from ..datasets import build_dataset
    if DATASETS.get(str(data_cfg.get('type'))) is None:
        from ..components import register_core_components
        register_core_components()
    return build_dataset(data_cfg, split=split, max_samples=num_images)


@dataclass
class _Cell:
    title: str
    image: Optional[np.ndarray]


@dataclass
class _Sample:
    img_id: str
    cells: List[_Cell] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def _cam_cells(img, gt_classes: List[int], src: Source, img_id: str, names: List[str],
               prefix: str, extra: bool = True) -> Tuple[List[_Cell], List[str]]:
    """One CAM overlay per class: GT classes first, then (``extra``) classes only the CAM
    file has.  Without ``extra`` there is exactly one cell per GT class, a missing file
    included (empty cells), so that rows of several runs line up."""
    from .overlay import overlay_cam
    path = src.path / f'{img_id}.npz'
    if not path.is_file():
        missing = [f'{src.stage}: {path.name} missing']
        if not extra:
            return [_Cell(f'{prefix}no CAM file', None) for _ in gt_classes], missing
        return [_Cell(f'{prefix}no CAM file', None)], missing
    cams, ids = load_cam(path)
    by_class = {int(c) + 1: k for k, c in enumerate(ids)}
    cells = []
    shown = gt_classes + (sorted(set(by_class) - set(gt_classes)) if extra else [])
    for c in shown:
        name = names[c] if c < len(names) else f'class {c}'
        if c not in by_class:
            cells.append(_Cell(f'{prefix}{name} (no CAM)', None))
            continue
        suffix = '' if c in gt_classes or not gt_classes else ' (not in GT)'
        cells.append(_Cell(f'{prefix}{name}{suffix}', overlay_cam(img, cams[by_class[c]])))
    return cells, []


def _label_cell(img, src: Source, img_id: str) -> Tuple[_Cell, Optional[str]]:
    from .overlay import overlay_label
    path = src.path / f'{img_id}.png'
    if not path.is_file():
        return _Cell(f'{src.stage} (missing)', None), f'{src.stage}: {path.name} missing'
    return _Cell(src.stage, overlay_label(img, read_label_png(path))), None


def input_cells(sample: dict, names: List[str]) -> Tuple[_Sample, List[int]]:
    """``(sheet with the image and ground-truth cells, the image's classes)``; the classes
    (label indices, background 0 left out) are those of the ground-truth mask, or of the
    image-level labels when the sample has no mask."""
    from .overlay import overlay_label
    img, gt, img_id = sample['img'], sample.get('gt_seg'), str(sample['img_id'])
    out = _Sample(img_id, [_Cell('image', img)])
    if gt is not None:
        out.cells.append(_Cell('ground truth', overlay_label(img, gt)))
        classes = [int(c) for c in np.unique(gt) if 0 < c < 255]
    else:
        out.cells.append(_Cell('ground truth (none)', None))
        labels = np.asarray(sample.get('labels', []))
        classes = [int(c) + 1 for c in np.flatnonzero(labels > 0)]
    out.notes.append('classes: ' + (', '.join(names[c] if c < len(names) else str(c)
                                              for c in classes) or 'none'))
    return out, classes


def render_sample(sample: dict, sources: Sequence[Source], names: List[str]) -> _Sample:
    """The cells of one image's sheet (see the module docstring for the columns)."""
    img, img_id = sample['img'], str(sample['img_id'])
    out, classes = input_cells(sample, names)
    cam_sources = [s for s in sources if s.kind == 'cams']
    for src in cam_sources:
        prefix = f'{src.stage}: ' if len(cam_sources) > 1 else ''
        cells, notes = _cam_cells(img, classes, src, img_id, names, prefix)
        out.cells += cells
        out.notes += notes
    for src in sources:
        if src.kind != 'cams':
            cell, note = _label_cell(img, src, img_id)
            out.cells.append(cell)
            out.notes += [note] if note else []
    return out


def save_sheet_png(rows, titles: List[str], path: Path, files: _Files, cell_size: int,
                   row_labels: Optional[List[str]] = None) -> str:
    """:func:`~wsss_core.visualization.sheet.make_sheet` of ``rows`` written to ``path``
    through ``files``; returns the page's ``src`` for it."""
    from .sheet import make_sheet
    sheet = make_sheet(rows, titles=titles, row_labels=row_labels, cell_size=cell_size)
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(sheet).save(buf, format='PNG')
    return files.write_bytes(path, buf.getvalue())


def _save_sample(sample: _Sample, split: str, files: _Files, cell_size: int) -> str:
    return save_sheet_png([[c.image for c in sample.cells]], [c.title for c in sample.cells],
                          files.path('sample', split, sample.img_id), files, cell_size)


def _split_samples(cfg, split: Optional[str], sources: List[Source], names: List[str],
                   num_images: int, files: _Files, cell_size: int) -> str:
    label = split or 'default split'
    try:
        dataset = open_dataset(_data_cfg(cfg), split, num_images)
        if not names:
            names[:] = ['background', *map(str, getattr(dataset, 'class_names', ()))]
        figures = []
        for index in range(min(num_images, len(dataset))):
            sample = render_sample(dataset.load_sample(index), sources, names)
            src = _save_sample(sample, split or 'default', files, cell_size)
            caption = '; '.join([sample.img_id, *sample.notes])
            figures.append(f'<figure><img class="sheet" src="{_e(src)}" alt="{_e(sample.img_id)}">'
                           f'<figcaption>{_e(caption)}</figcaption></figure>')
    except Exception as exc:  # the tables are still worth writing
        return (f'<h3>split: {_e(label)}</h3><p class="warn">Images unavailable: '
                f'{_e(type(exc).__name__)}: {_e(exc)}</p>')
    shown = ', '.join(f'{s.stage} ({s.kind})' for s in sources)
    return (f'<h3>split: {_e(label)}</h3><p class="note">Columns: image, ground truth, '
            f'then {_e(shown)}.</p>' + ''.join(figures))


def _data_cfg(cfg) -> dict:
    data = cfg.get('data') if cfg is not None else None
    if data is None:
        raise ValueError("the work dir's config.py has no 'data' entry")
    return data.to_dict() if hasattr(data, 'to_dict') else dict(data)


def _legend(names: List[str]) -> str:
    pal = voc_palette(max(len(names), 1))
    items = ''.join(f'<span class="swatch" style="background: rgb({r},{g},{b})"></span>'
                    f'{_e(n)} ' for n, (r, g, b) in zip(names, pal.tolist()))
    return (f'<p class="legend">Label colours: {items}<span class="swatch" style="background: '
            'rgb(224,224,192)"></span>ignore (255). CAM overlays: JET colour map, blue = low, '
            'red = high.</p>')


def samples_section(stages, cfg, cfg_problem, work_dir: Path, names: List[str], num_images: int,
                    files: _Files, cell_size: int) -> str:
    sources = find_sources(stages, work_dir)
    if num_images <= 0 or not sources:
        why = 'num_images is 0' if num_images <= 0 else \
            'no finished stage produced CAMs, labels or predictions'
        return f'<h2 id="samples">Samples</h2><p>No sample images: {_e(why)}.</p>'
    if cfg is None:
        return (f'<h2 id="samples">Samples</h2><p class="warn">Images unavailable: '
                f'{_e(cfg_problem)}.</p>')
    splits: Dict[Optional[str], List[Source]] = {}
    for src in sources:
        splits.setdefault(src.split, []).append(src)
    body = ''.join(_split_samples(cfg, split, group, names, num_images, files, cell_size)
                   for split, group in splits.items())
    return f'<h2 id="samples">Samples</h2>{_legend(names)}{body}'


# ============================================================================ the page
_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px;
       color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px;
border-bottom: 1px solid #ccc; } h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f5; } .num { font-family: monospace; }
.badge { background: #c0392b; color: #fff; border-radius: 3px; padding: 0 4px; font-size: 11px; }
.note { color: #555; font-size: 13px; } .warn { color: #a04000; }
.status-complete { color: #1e7b34; } .status-unfinished, .status-not_run { color: #a04000;
font-weight: bold; }
th.oracle, td.oracle { background: #f9d6d2; } th.fixed, td.fixed { background: #d4efdf; }
img.sheet { max-width: 100%; height: auto; display: block; } img.plot { display: block; }
figure { margin: 6px 0 14px 0; } figcaption { font-size: 12px; color: #555; }
.swatch { display: inline-block; width: 12px; height: 12px; border: 1px solid #999;
margin: 0 3px 0 8px; vertical-align: middle; } .legend { font-size: 13px; }
"""


def _header(work_dir: Path, stages: Sequence[StageInfo]) -> str:
    env, _ = _read_json(work_dir / 'env.json')
    env_line = ''
    if isinstance(env, dict):
        flat = dict(env.get('versions') or {}, commit=str(env.get('git_commit') or '')[:10],
                    time=env.get('time'))
        keys = [k for k in ('wsss-core', 'torch', 'mmengine', 'commit', 'time') if flat.get(k)]
        env_line = ', '.join(f'{_e(k)} {_e(flat[k])}' for k in keys)
    done = sum(st.complete for st in stages)
    return (f'<h1>wsss report: {_e(work_dir.name)}</h1><p class="note">work dir '
            f'<code>{_e(work_dir)}</code>; {done} of {len(stages)} stages finished'
            + (f'; {env_line}' if env_line else '') + '</p>'
            f'<p class="note">{_e(ORACLE_NOTE)}</p>')


def render_html(work_dir: Path, sections: Sequence[str], title: Optional[str] = None,
                css: str = '') -> str:
    """The page: ``title`` (default ``wsss report: <work dir name>``), the report's style
    sheet plus ``css``, then ``sections``."""
    title = f'wsss report: {work_dir.name}' if title is None else title
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{_e(title)}</title><style>{_CSS}{css}</style></head>'
            '<body>\n' + '\n'.join(s for s in sections if s) + '\n</body></html>\n')


def build_report(work_dir, num_images: int = 6, cell_size: int = 128) -> Path:
    """Write ``work_dir/report.html`` and its PNGs under ``work_dir/report/``; return the path.

    Args:
        work_dir: a run's work dir (``config.py``, ``summary.json`` and stage dirs).
        num_images: sample images per split (the first ones of the split); 0 for none.
        cell_size: pixel size of one cell of a sample sheet.

    Raises:
        FileNotFoundError: ``work_dir`` is not a directory.
    """
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        raise FileNotFoundError(f'work dir not found: {work_dir}')
    cfg, cfg_problem = load_work_dir_config(work_dir)
    stages = collect_stages(work_dir, cfg)
    names = class_order(stages)
    files = _Files(work_dir)
    files.dir.mkdir(exist_ok=True)
    samples = samples_section(stages, cfg, cfg_problem, work_dir, names, int(num_images),
                              files, int(cell_size))  # may fill in `names` from the dataset
    sections = [_header(work_dir, stages), stages_section(stages), metrics_section(stages),
                samples, per_class_section(stages, names), curve_section(stages, files),
                training_section(stages, files), stage_sheets_section(stages, work_dir)]
    out = work_dir / REPORT_HTML
    with atomic_write(out, 'w') as fh:
        fh.write(render_html(work_dir, sections))
    files.remove_stale()
    return out
