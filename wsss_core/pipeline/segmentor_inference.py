"""TestSegmentor: predict a split with a trained segmentor, optional TTA and dense CRF, mIoU.

Two passes (``docs/methods/deeplab.md`` §4.6-4.7; the mIoU as in
``docs/methods/baseline.md#14-miou-and-its-conventions``):

1. **scores** -- per image (full size, batch 1), the network's fused scores at the output
   stride, averaged over test-time augmentation: for each scale s in ``scales`` (must
   contain 1.0) and, with ``flip``, the mirrored input,

       y = mean_{s, f} resize(F_f(net(F_f(rescale(x, s)))), size of net(x))

   (``F_f``: horizontal flip or identity; the reference uses scale 1.0 only, no flip, with
   the network's own MSC max fusion inside ``net``).  Stored as ``logits/<id>.npz``
   (float16, or float32 for an image whose scores exceed float16's range), the reference's
   ``.npy`` logits, reusable by later stages (e.g. NSROM).
2. **labels** -- :class:`~.segmentor_postprocess.PostprocessJob`: upsample, softmax, argmax
   (``predictions_raw/`` when a CRF runs) and, with ``crf``, the core's dense CRF (preset
   ``'deeplab'``) on the raw RGB image (or the reference's quirk, ``image=
   'mean_subtracted_bgr'``); ``predictions/<id>.png`` holds the final labels (palettised:
   0 background, 1..C).  ``workers`` spreads this pass over processes.

**Pipelined** (``crf_workers = n >= 1``): the two passes interleave.  Each image's
post-processing job is handed to ``n`` worker processes
(:class:`~wsss_core.refiners.parallel.StreamingMap`) as soon as its scores are stored, so
the CRF of image k runs on the CPU while the network infers image k+1 (on the GPU, or on
the main process's CPU threads).  At most ``2 n`` jobs wait or run at a time, so memory
stays bounded; the files written, the resume rules and the results are those of the two
passes, and a job that fails is re-raised here naming its image.  ``crf_workers = 0``
(default) runs the two passes one after the other, as before.

``channels_last=True`` runs the network with NHWC weights and inputs
(:mod:`wsss_core.pipeline.memory_format`); the scores equal the default's up to float
rounding.

With ground truth, ``miou.json`` holds the confusion-matrix summary of the raw and of the
CRF predictions: ``miou`` under ``miou_convention``, the mIoU of every convention
(``miou_by_convention``: ``union``, ``gt_present`` = deeplab-pytorch's ``scores()``,
``all_classes`` = psa-style ``eval.py``; :mod:`wsss_core.evaluation.miou_conventions`),
frequency-weighted IoU (``fw_iou``), per-class IoU and accuracies; a split without masks
(VOC ``test``) is exported without metrics.  The DeepLab recipe fragments
(``deeplab::_recipes/``) set ``miou_convention='gt_present'`` (deeplab-pytorch's mean); the
stage's default is ``union``.  The convention is not hashed: it changes no prediction, and
``miou.json`` holds every mean.
Interrupted runs resume: stored scores and PNGs are reused.

A :class:`~wsss_core.pipeline.per_image.PerImageStage`: pass 1 is its in-process work on
the images without stored scores, pass 2 its job (which reads back the PNGs written before,
so that the metrics cover every image); under torchrun or ``WSSS_SHARD=i/n`` each process
does both passes for its share of the images; once every shard finished,
:meth:`TestSegmentor.merge_shards` (main process) evaluates all images from the PNGs the
shards wrote and writes ``miou.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets import build_dataset
from ..evaluation.confusion import ConfusionMatrix
from ..evaluation.miou_conventions import check_convention
from ..io import write_json
from ..models.protocols import Segmenter, require_model
from ..models.rescale import rescale_input
from ..refiners.dense_crf import crf_params
from ..refiners.parallel import map_images
from ..registry import STAGES
from .artifacts import PREDICTIONS, TRAINED_MODEL
from .memory_format import check_channels_last, to_channels_last
from .per_image import PerImageStage, Share
from .recipe_fragments import RECIPE_FRAGMENT_HINT
from .segmentor_postprocess import CRF_IMAGES, PostprocessJob, save_logits
from .stage import StageContext, StageError

__all__ = ['TestSegmentor', 'tta_logits', 'normalize_crf_cfg']


def normalize_crf_cfg(crf: Union[None, bool, dict]) -> Optional[dict]:
    """``None``/``False`` -> no CRF; ``True`` -> the DeepLab plugin's preset ``deeplab`` on the raw RGB image;
    a dict ``dict(type='DenseCRF', preset='deeplab', image='raw_rgb', **overrides)``."""
    if crf is None or crf is False:
        return None
    cfg = dict(preset='deeplab') if crf is True else dict(crf)
    kind = cfg.pop('type', 'DenseCRF')
    if kind != 'DenseCRF':
        raise StageError(f"TestSegmentor's crf must be a DenseCRF config, got type {kind!r}")
    cfg.setdefault('preset', 'deeplab')
    cfg.setdefault('image', 'raw_rgb')
    if cfg['image'] not in CRF_IMAGES:
        raise StageError(f"crf image must be one of {CRF_IMAGES}, not {cfg['image']!r}")
    crf_params(cfg['preset'], **{k: v for k, v in cfg.items() if k not in ('preset', 'image')})
    return cfg


@torch.no_grad()
def tta_logits(model, img: torch.Tensor, scales: Sequence[float] = (1.0,),
               flip: bool = False) -> torch.Tensor:
    """Mean of the fused scores over scales x flips, at the size of the scale-1.0 output.

    ``img`` is the normalised (1, 3, H, W) batch; returns (1, K, h, w).
    """
    scales = [1.0] + [float(s) for s in scales if float(s) != 1.0]
    total, count, size = None, 0, None
    for s in scales:
        x = rescale_input(img, s)
        for mirrored in ((False, True) if flip else (False,)):
            y = model.fused_logits(x.flip(-1) if mirrored else x)
            if mirrored:
                y = y.flip(-1)
            if size is None:
                size = y.shape[-2:]
            elif y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode='bilinear', align_corners=False)
            total = y if total is None else total + y
            count += 1
    return total / count


@STAGES.register_module()
class TestSegmentor(PerImageStage):
    """Predict ``split`` with the segmentor of stage ``checkpoint``; evaluate when possible.

    Args:
        checkpoint: a TrainSegmentor-like stage (``artifacts.model`` and ``weights``).
        split: the images to predict (e.g. 'val'; 'train_aug' for NSROM's second round).
        scales / flip: test-time augmentation (reference: (1.0,), no flip); scales must
            contain 1.0.
        crf: None, True, or ``dict(type='DenseCRF', preset='deeplab', image='raw_rgb',
            **overrides)`` (see :func:`normalize_crf_cfg`).
        workers: processes for the post-processing pass (not hashed: same results).
        crf_workers: with n >= 1, post-process each image in one of n worker processes
            while the network infers the next (pipelined; ``workers`` then only serves
            :meth:`merge_shards`); 0 (default): the two passes in turn.  Not hashed.
        channels_last: run the network in channels-last layout (hashed only when True).
        miou_convention: the mean reported as ``miou`` ('union', default; 'gt_present';
            'all_classes'); not hashed, ``miou.json`` holds all three.
        max_samples: only the first N images.
    """

    __test__ = False  # not a pytest test class, despite the name
    reads = {'checkpoint': TRAINED_MODEL}
    produces = (PREDICTIONS,)
    revisit_finished = True            # pass 2 covers every image: the metrics need them all
    output_file = ('logits', '.npz')   # pass 1: an image with stored scores is not inferred

    #: options it no longer takes, with the way forward (the refusal's hint)
    retired_options = {'recipe': RECIPE_FRAGMENT_HINT}

    def __init__(self, name: str, checkpoint: str, split: str = 'val',
                 scales: Sequence[float] = (1.0,), flip: bool = False,
                 crf: Union[None, bool, dict] = None, workers: int = 0,
                 crf_workers: int = 0, max_samples: Optional[int] = None,
                 channels_last: bool = False, miou_convention: Optional[str] = None):
        scales = [float(s) for s in scales]
        if 1.0 not in scales:
            raise StageError(f'[{name}] scales must contain 1.0 (the grid the scores are '
                             f'stored on), got {scales}')
        super().__init__(name, checkpoint=checkpoint, split=split, scales=scales,
                         flip=bool(flip), crf=normalize_crf_cfg(crf), max_samples=max_samples,
                         channels_last=check_channels_last(name, channels_last))
        for key, value in (('workers', workers), ('crf_workers', crf_workers)):
            if int(value) < 0:
                raise StageError(f'[{name}] {key} must be >= 0, got {value}')
        self.workers, self.crf_workers = int(workers), int(crf_workers)
        try:   # not hashed: it only picks which mean is called miou
            self.miou_convention = check_convention(miou_convention)
        except ValueError as exc:
            raise StageError(f'[{name}] {exc}') from None

    @property
    def stream_workers(self) -> int:
        """The base's overlap of the two passes: ``crf_workers``."""
        return self.crf_workers

    def progress_desc(self, phase: str) -> str:
        label = dict(process='scores', job='labels', stream='predict')[phase]
        return f'[{self.name}] {label}'

    def _dataset(self, ctx: StageContext):
        o = self.options
        return build_dataset(ctx.data_cfg, split=o['split'], max_samples=o['max_samples'])

    def setup(self, ctx: StageContext) -> None:
        o = self.options
        trained = self.read_input(ctx, 'checkpoint')
        self.model = require_model(trained.load(ctx.device), Segmenter,
                                   f"[{self.name}] TestSegmentor (checkpoint='{o['checkpoint']}')")
        if o.get('channels_last'):
            self.model = to_channels_last(self.model, self.name)
        self.dataset = self._dataset(ctx)
        self.num_labels = int(trained.num_classes if trained.num_classes is not None
                              else self.dataset.num_classes) + 1
        if self.num_labels != self.dataset.num_classes + 1:
            raise StageError(f"[{self.name}] the model of '{o['checkpoint']}' predicts "
                             f'{self.num_labels} labels, the data set has '
                             f'{self.dataset.num_classes} classes + background')

    # ------------------------------------------------------------------ pass 1
    def process(self, ctx: StageContext, index: int) -> None:
        """Pass 1 for one image: TTA scores -> ``logits/<id>.npz``."""
        sample = self.dataset.load_sample(index)
        img = torch.from_numpy(np.ascontiguousarray(sample['img'].transpose(2, 0, 1)))[None]
        img = self.model.data_preprocessor(dict(img=img.to(ctx.device)))['img']
        logits = tta_logits(self.model, img, self.options['scales'], self.options['flip'])
        save_logits(self.outputs(ctx, index)[0], logits[0].float().cpu().numpy(),
                    sample['img'].shape[:2])

    # ------------------------------------------------------------------ pass 2
    def _crf_params(self):
        crf = self.options['crf']
        if crf is None:
            return None
        overrides = {k: v for k, v in crf.items() if k not in ('preset', 'image')}
        return crf_params(crf['preset'], **overrides)

    def job(self, ctx: StageContext) -> PostprocessJob:
        """The picklable per-image job of pass 2 (:class:`PostprocessJob`)."""
        crf = self.options['crf']
        stage_dir = Path(ctx.stage_dir)
        return PostprocessJob(self.dataset, stage_dir / 'logits', stage_dir / 'predictions',
                              stage_dir / 'predictions_raw' if crf else None, self.num_labels,
                              self._crf_params(), crf['image'] if crf else 'raw_rgb')

    def summarise(self, ctx: StageContext, share: Share) -> dict:
        """The metrics of ``share.results`` (``(img_id, conf_raw, conf_crf)`` of pass 2);
        with shards, ``miou.json`` waits for :meth:`merge_shards` (all images): each shard's
        own metrics only cover its share."""
        metrics, artifacts = self._evaluated(ctx, self.dataset, share.results, self.num_labels,
                                             write=not share.shard.split)
        return dict(metrics=metrics, artifacts=artifacts,
                    counts=dict(evaluated=sum(r[1] is not None for r in share.results)))

    def merge_shards(self, ctx: StageContext, record: dict) -> dict:
        """After every shard finished: evaluate all images from the written PNGs (read back,
        not recomputed) and write ``miou.json``; the merged record's metrics cover them all."""
        dataset = self._dataset(ctx)
        self.dataset, self.num_labels = dataset, dataset.num_classes + 1   # what job() reads
        results = map_images(self.job(ctx), range(len(dataset)), workers=self.workers,
                             desc=self.progress_desc('job'), progress=ctx.progress)
        metrics, artifacts = self._evaluated(ctx, dataset, results, self.num_labels, write=True)
        counts = dict(record.get('counts') or {},
                      evaluated=sum(r[1] is not None for r in results))
        return dict(record, metrics=metrics, counts=counts, artifacts=artifacts)

    def _evaluated(self, ctx: StageContext, dataset, results, num_labels: int, write: bool):
        """``(metrics, artifacts)`` of ``results``; ``miou.json`` written when ``write``."""
        o = self.options
        params = self._crf_params()
        names = ['background', *dataset.class_names]
        metrics, record = self._evaluate(results, num_labels, names)
        crf_record = None if params is None else dict(
            preset=o['crf']['preset'], image=o['crf']['image'], params=params.kernels())
        if record is not None and write:
            write_json(Path(ctx.stage_dir) / 'miou.json',
                       dict(record, miou_convention=self.miou_convention, split=o['split'],
                            crf_settings=crf_record,
                            tta=dict(scales=o['scales'], flip=o['flip'])))
        artifacts = dict(PREDICTIONS.record('predictions', o['split'], dataset),
                         logits='logits', crf=crf_record, tta=dict(scales=o['scales'], flip=o['flip']),
                         metrics='miou.json' if record is not None else None)
        if params is not None:
            artifacts['predictions_raw'] = 'predictions_raw'
        return metrics, artifacts

    def _evaluate(self, results, num_labels: int, names):
        """Summaries of the raw and CRF predictions over the images with ground truth."""
        convention = self.miou_convention
        raw = ConfusionMatrix(num_labels, convention=convention)
        crf = ConfusionMatrix(num_labels, convention=convention)
        for _, conf_raw, conf_crf in results:
            if conf_raw is not None:
                raw.add_matrix(conf_raw)
            if conf_crf is not None:
                crf.add_matrix(conf_crf)
        if raw.num_images == 0:
            return {}, None
        record = dict(raw=raw.summary(names))
        final = record['raw']
        metrics = dict(miou_raw=record['raw']['miou'])
        if crf.num_images:
            record['crf'] = final = crf.summary(names)
            metrics['miou_crf'] = record['crf']['miou']
        # the final predictions' figures (CRF when it ran), under their names
        metrics.update({k: final[k] for k in ('miou', 'miou_convention', 'miou_by_convention',
                                              'fw_iou', 'pixel_accuracy')})
        return metrics, record
