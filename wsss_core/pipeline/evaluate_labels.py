"""EvaluateLabels: mIoU of CAMs (fixed and oracle thresholds) or of pseudo labels vs ground truth.

* ``cams=STAGE``: CAMs with a constant background ``threshold`` (the figure a weakly
  supervised method may report) and, labelled **oracle**, the best threshold of a sweep
  (it picks the threshold with the ground truth).
* ``labels=STAGE``: pseudo labels' mIoU (ignored pixels count as background), per-class
  IoU, and precision / recall of the labelled pixels.
Results go to the manifest and to ``metrics.json``.

``miou_convention`` (:mod:`~wsss_core.evaluation.miou_conventions`: ``union``, the default,
``gt_present`` or ``all_classes``) picks the mean reported as ``miou`` and ``oracle_miou``
(the sweep's best threshold maximises it); ``miou_convention`` names it,
``miou_by_convention`` holds all three, and ``fw_iou`` the frequency-weighted IoU. The
convention is not in the config hash: it changes no artifact, only which mean is called
``miou``, so a finished stage is not re-run when it changes (its ``metrics.json`` already
holds every convention).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from tqdm import tqdm

from ..datasets import build_dataset
from ..evaluation.cam_labels import cam_to_label
from ..evaluation.confusion import ConfusionMatrix
from ..evaluation.label_quality import LabelQuality
from ..evaluation.miou_conventions import check_convention, convention_metrics
from ..evaluation.threshold_sweep import ThresholdSweep
from ..io import DataFileError, load_cam, read_label_png, write_json
from ..registry import STAGES
from .artifacts import CAM_SET, LABEL_SET, PREDICTIONS
from .stage import Stage, StageContext, StageError

DEFAULT_SWEEP = tuple(np.round(np.arange(0.05, 0.601, 0.05), 2).tolist())


@STAGES.register_module()
class EvaluateLabels(Stage):
    """Score ``cams`` or ``labels`` of an earlier stage against the split's ground truth."""

    reads = {'cams': CAM_SET, 'labels': (LABEL_SET, PREDICTIONS)}

    def __init__(self, name: str, cams: Optional[str] = None, labels: Optional[str] = None,
                 threshold: float = 0.25, sweep: Sequence[float] = DEFAULT_SWEEP,
                 miou_convention: Optional[str] = None):
        if (cams is None) == (labels is None):
            raise StageError(f"EvaluateLabels '{name}' needs exactly one of cams= or labels=")
        try:
            self.miou_convention = check_convention(miou_convention)  # not hashed (docstring)
        except ValueError as exc:
            raise StageError(f"EvaluateLabels '{name}': {exc}") from None
        super().__init__(name, cams=cams, labels=labels, threshold=float(threshold),
                         sweep=[float(t) for t in sweep])

    def run(self, ctx: StageContext) -> dict:
        option = 'cams' if self.options['cams'] else 'labels'
        source = self.read_input(ctx, option)
        dataset = build_dataset(ctx.data_cfg, split=source.split, load_gt=True)
        missing = [r.img_id for r in dataset.records if r.seg_path is None]
        if missing:
            raise DataFileError(f"split '{source.split}' has no ground-truth mask for "
                                f'{len(missing)} image(s), e.g. {missing[:3]}')
        if option == 'cams':
            metrics, detail = self._eval_cams(ctx, dataset, source.folder)
        else:
            metrics, detail = self._eval_labels(ctx, dataset, source.folder)
        write_json(Path(ctx.stage_dir) / 'metrics.json', dict(metrics=metrics, **detail))
        return dict(metrics=metrics, counts=dict(images=len(dataset)),
                    artifacts=dict(metrics='metrics.json', source=source.stage,
                                   split=source.split))

    def _records(self, ctx, dataset):
        return tqdm(dataset.records, desc=f'[{self.name}] evaluate', unit='img',
                    disable=not ctx.progress)

    def _eval_cams(self, ctx, dataset, cam_dir: Path):
        n = dataset.num_classes + 1
        thr = self.options['threshold']
        convention = self.miou_convention
        sweep = ThresholdSweep(n, self.options['sweep'], convention=convention)
        fixed = ConfusionMatrix(n, convention=convention)
        for rec in self._records(ctx, dataset):
            cams, ids = load_cam(cam_dir / f'{rec.img_id}.npz')
            gt = read_label_png(rec.seg_path, dataset.num_classes)
            sweep.update(cams, ids, gt)
            fixed.update(cam_to_label(cams, ids, thr), gt)
        best = sweep.best()
        names = ['background', *dataset.class_names]
        metrics = {**convention_metrics(fixed.matrix, convention), 'threshold': thr,
                   'oracle_miou': best['miou'], 'oracle_threshold': best['threshold']}
        detail = dict(fixed=fixed.summary(names), oracle=dict(best, note=(
            'best background threshold chosen with the ground truth: an oracle, not a '
            'weakly supervised result')), curve=[list(p) for p in sweep.curve()])
        return metrics, detail

    def _eval_labels(self, ctx, dataset, label_dir: Path):
        n = dataset.num_classes + 1
        quality = LabelQuality(n)
        for rec in self._records(ctx, dataset):
            pred = read_label_png(label_dir / f'{rec.img_id}.png', dataset.num_classes)
            quality.update(pred, read_label_png(rec.seg_path, dataset.num_classes))
        convention = self.miou_convention
        # ignored pixels count as background, as in irn's eval
        conf = ConfusionMatrix(n, convention=convention)
        conf.add_matrix(quality.confusion('background'), num_images=quality.num_images)
        names = ['background', *dataset.class_names]
        q = quality.summary(names, convention)
        metrics = {**convention_metrics(conf.matrix, convention), 'precision': q['precision'],
                   'recall': q['recall'], 'labelled_fraction': q['labelled_fraction']}
        return metrics, dict(confusion=conf.summary(names), quality=q)
