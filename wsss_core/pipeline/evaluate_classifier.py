"""EvaluateClassifier: a trained classifier's image-level mAP on a split, scored again.

A training stage's validation reports the model's own ``predict`` scores on ``val``.  This
stage scores the finished weights of ``source`` once more, on any split and, where a model
offers several ways to score an image, with another one: ``predict_options`` are attributes
of the loaded model set before scoring, each of which the model must already have (e.g.
EDAM's ``predict_scores``: ``'da'`` the spatial mean of its DA masks, what its training
validation reports, or ``'cma_self'`` its trained classification head with each image paired
with itself).  Nothing is trained and no weight changes.

Metrics (the manifest and ``metrics.json``), over the split's images:

* ``cls/mAP`` = (1 / K) sum_k AP_k, AP_k the average precision of class k's scores against
  its image labels (:func:`~wsss_core.evaluation.classification.mean_average_precision`);
* ``cls/exact_match`` and ``cls/label_acc`` at the score threshold ``thr``
  (:class:`~wsss_core.evaluation.classification.MultiLabelMAP`);
* ``per_class_ap`` (in ``metrics.json``) by class name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from ..datasets import build_dataset
from ..evaluation.classification import MultiLabelMAP
from ..io import write_json
from ..registry import STAGES
from .artifacts import TRAINED_MODEL
from .make_cams import batches_of_equal_size
from .stage import Stage, StageContext, StageError


@STAGES.register_module()
class EvaluateClassifier(Stage):
    """Score the classifier of training stage ``source`` on ``split`` (see the module
    docstring); ``predict_options`` = ``{attribute: value}`` set on the loaded model."""

    reads = {'source': TRAINED_MODEL}
    headline_metrics = ('cls/mAP',)

    def __init__(self, name: str, source: str, split: str = 'val',
                 predict_options: Optional[dict] = None, thr: float = 0.5,
                 batch_size: int = 32, max_samples: Optional[int] = None):
        super().__init__(name, source=source, split=split,
                         predict_options=dict(predict_options or {}), thr=float(thr),
                         batch_size=int(batch_size), max_samples=max_samples)

    def load_model(self, ctx: StageContext):
        """The source's model in eval mode with ``predict_options`` set (each must name an
        attribute the model already has: a typo would otherwise score silently as before)."""
        model = self.read_input(ctx, 'source').load(ctx.device)
        for key, value in self.options['predict_options'].items():
            if not hasattr(model, key):
                raise StageError(f"[{self.name}] predict_options: {type(model).__name__} has no "
                                 f"attribute '{key}' (it has no such way to score an image)")
            setattr(model, key, value)
        return model.eval()

    def run(self, ctx: StageContext) -> dict:
        o = self.options
        model = self.load_model(ctx)
        dataset = build_dataset(ctx.data_cfg, split=o['split'], load_gt=False,
                                max_samples=o['max_samples'])
        metric = MultiLabelMAP(thr=o['thr'])
        bar = tqdm(total=len(dataset), desc=f'[{self.name}] score', unit='img',
                   disable=not ctx.progress)
        with bar, torch.inference_mode():
            for batch in batches_of_equal_size(dataset, range(len(dataset)), o['batch_size']):
                img = torch.from_numpy(np.stack([s['img'] for s in batch])).permute(0, 3, 1, 2)
                img = model.data_preprocessor.normalize(img.to(ctx.device))
                preds = model(img, mode='predict')
                metric.process(None, [dict(scores=p['scores'].float().cpu(), labels=s['labels'])
                                      for p, s in zip(preds, batch)])
                bar.update(len(batch))
        summary, per_class = metric.summarise(metric.results)
        metrics = {f'cls/{k}': float(v) for k, v in summary.items()}
        names = list(getattr(dataset, 'class_names', None) or range(len(per_class)))
        write_json(Path(ctx.stage_dir) / 'metrics.json', dict(
            metrics=metrics, per_class_ap={str(n): float(a) for n, a in zip(names, per_class)},
            predict_options=o['predict_options'], split=o['split']))
        return dict(metrics=metrics, counts=dict(images=len(dataset)),
                    artifacts=dict(metrics='metrics.json', source=o['source'], split=o['split']))
