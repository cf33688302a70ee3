"""The end-of-run summary: a table of each stage's headline metrics, and ``summary.json``.

mIoU rows name the stage's convention (``mIoU [gt_present]``; see
:mod:`~wsss_core.evaluation.miou_conventions`); records written before conventions existed
show a plain ``mIoU`` (they used ``union``)."""
from __future__ import annotations

from pathlib import Path
from typing import List

from ..evaluation.miou_conventions import convention_label
from ..io import write_json

_LABELS = {
    'miou': 'mIoU',
    'oracle_miou': 'mIoU, best threshold (oracle)',
    'precision': 'precision (labelled px)',
    'recall': 'recall',
    'cls/mAP': 'classification mAP',
}


def headline_metrics(stage) -> List[tuple]:
    """``(key, label)`` for each of the stage's ``headline_metrics`` (see
    :attr:`~wsss_core.pipeline.stage.Stage.headline_metrics`); a bare key takes its label
    from ``_LABELS`` (or is its own label)."""
    entries = getattr(stage, 'headline_metrics', tuple(_LABELS))
    return [(e, _LABELS.get(e, e)) if isinstance(e, str) else tuple(e) for e in entries]


def summary_rows(results) -> List[tuple]:
    """(stage, status, metric label, value) for every headline metric of every stage."""
    rows = []
    for res in results:
        metrics = (res.manifest or {}).get('metrics') or {}
        for key, label in headline_metrics(res.stage):
            if isinstance(metrics.get(key), (int, float)):
                extra = ''
                if key in ('miou', 'oracle_miou'):
                    label = label.replace('mIoU', convention_label(metrics.get('miou_convention')))
                if key == 'miou' and 'threshold' in metrics:
                    extra = f" @ bg {metrics['threshold']:.2f}"
                if key == 'oracle_miou':
                    extra = f" @ bg {metrics['oracle_threshold']:.2f}"
                rows.append((res.name, res.status, label + extra, float(metrics[key])))
    return rows


def format_summary(results, work_dir) -> str:
    rows = summary_rows(results)
    out = []
    if rows:
        w0 = max(len('stage'), *(len(r[0]) for r in rows))
        w1 = max(len('metric'), *(len(r[2]) for r in rows))
        out.append(f"{'stage':<{w0}}  {'metric':<{w1}}  value   run")
        out.append('-' * (w0 + w1 + 18))
        for name, status, label, value in rows:
            out.append(f'{name:<{w0}}  {label:<{w1}}  {value:6.4f}  {status}')
    for res in results:
        sheet = ((res.manifest or {}).get('artifacts') or {}).get('sheet')
        if sheet:
            out.append(f'\nsheet: {Path(work_dir) / res.name / sheet}')
    out.append(f'work dir: {work_dir}')
    return '\n'.join(out)


def write_summary(work_dir, results) -> None:
    write_json(Path(work_dir) / 'summary.json', [
        dict(stage=r.name, status=r.status, type=type(r.stage).__name__,
             metrics=(r.manifest or {}).get('metrics'), counts=(r.manifest or {}).get('counts'))
        for r in results])
