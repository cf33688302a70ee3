"""NSROM's non-salient region masking, NSRM (the reference's ``gen_masked_label.py``).

The rule: ``docs/methods/nsrom.md#38-non-salient-region-masking``.

The first segmentation round, run on the training images (``TestSegmentor(split='train')``,
usually with the CRF), finds objects the saliency map missed.  Its prediction P becomes the
label of the second round, per image, with the initial pseudo label L (POM's), the saliency
S (0..255) and the number n of image-level classes:

    O = P
    if n >= 2:                                        only "complex" images are masked
        O(p)  = L(p)            where O(p) = 0 and 1 <= L(p) <= C   pseudo foreground fills
                                                                    predicted background
        G     = [O != 0] OR [S != 0]                  support: any object or any saliency
        G     = dilate(G, ones(k, k)), k = 30         one iteration
        O(p)  = 255             where not G(p)        distant non-salient area -> ignore
    O = 255 everywhere if fewer than 1 % of the pixels are foreground (1..C)

Single-class images keep the prediction (then the 1 % rule).  The dilation is OpenCV's
``cv2.dilate`` with ``np.ones((k, k), np.uint8)`` and the default anchor (k // 2, k // 2):
for the even k = 30 it is not centred -- a support pixel at (y, x) covers rows y - 14 ..
y + 15 and columns x - 14 .. x + 15 (in general y - (k - 1 - k // 2) .. y + k // 2); the
border adds no support.

The stage :class:`MaskNonSalientRegions` writes O as palettised ``labels/<id>.png`` with a
manifest that ``EvaluateLabels(labels=...)`` and ``TrainSegmentor(labels=...)`` read.  It is a
:class:`~wsss_core.pipeline.per_image.PerImageStage`: existing labels are kept (resume), and
under torchrun or ``WSSS_SHARD=i/n`` each process masks its share of the images; the
``ignored_fraction`` over all images is then computed once from the written labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List

import cv2
import numpy as np

from wsss_core.datasets import build_dataset
from wsss_core.io import IGNORE_INDEX, read_gray_png, read_label_png, save_label_png
from wsss_core.pipeline.artifacts import LABEL_SET, PREDICTIONS
from wsss_core.pipeline.per_image import PerImageStage
from wsss_core.pipeline.stage import StageContext, StageError
from wsss_core.refiners.parallel import map_images
from wsss_core.registry import STAGES
from wsss_oaa.proxy_labels import ignore_if_nearly_empty

__all__ = ['MaskNonSalientRegions', 'MaskJob', 'non_salient_region_mask']


def _foreground(label: np.ndarray) -> np.ndarray:
    return (label != 0) & (label != IGNORE_INDEX)


def non_salient_region_mask(pred: np.ndarray, pseudo: np.ndarray, saliency_u8: np.ndarray,
                            num_gt_classes: int, dilation: int = 30,
                            min_fg_ratio: float = 0.01) -> np.ndarray:
    """The rule of the module docstring for one image.

    Args:
        pred: P, uint8 (H, W), the first round's prediction (0 background, 1..C).
        pseudo: L, uint8 (H, W), the initial pseudo label (0, 1..C, 255 ignore).
        saliency_u8: S, uint8 (H, W), 0..255.
        num_gt_classes: n, the number of image-level classes of the image.
        dilation: k, the side of the square dilation kernel (30).
        min_fg_ratio: 0.01, below which the whole image is ignored.

    Returns:
        O, a new uint8 (H, W) label map.
    """
    pred, pseudo, sal = np.asarray(pred), np.asarray(pseudo), np.asarray(saliency_u8)
    if not pred.shape == pseudo.shape == sal.shape or pred.ndim != 2:
        raise ValueError(f'prediction {pred.shape}, pseudo label {pseudo.shape} and saliency '
                         f'{sal.shape} must be 2-D maps of one size')
    if int(dilation) < 1:
        raise ValueError(f'dilation must be >= 1, got {dilation}')
    out = pred.astype(np.uint8, copy=True)
    if num_gt_classes >= 2:
        fill = _foreground(pseudo) & (out == 0)
        out[fill] = pseudo[fill]
        support = ((out != 0) | (sal != 0)).astype(np.uint8)
        kernel = np.ones((int(dilation), int(dilation)), np.uint8)
        support = cv2.dilate(support, kernel, iterations=1)
        out[support == 0] = IGNORE_INDEX
    return ignore_if_nearly_empty(out, min_fg_ratio)


@dataclass
class MaskJob:
    """One image of :class:`MaskNonSalientRegions` (picklable for :func:`map_images`).

    Called with an index into ``items`` = ``(img_id, saliency path, n classes)``; writes
    ``out_dir/<id>.png`` unless it exists (resume: then it is only read back) and returns
    ``(img_id, ignored pixels, pixels)``.
    """
    items: list
    pred_dir: Path
    label_dir: Path
    out_dir: Path
    num_classes: int
    dilation: int
    min_fg_ratio: float

    def item_name(self, index: int) -> str:
        """How worker errors (e.g. a killed worker) name item ``index``."""
        return f'image {self.items[index][0]}'

    def __call__(self, index: int):
        img_id, sal_path, n_classes = self.items[index]
        path = self.out_dir / f'{img_id}.png'
        if path.is_file():
            out = read_label_png(path, self.num_classes)
        else:
            out = self.mask(img_id, sal_path, n_classes)
            save_label_png(path, out)
        return img_id, int((out == IGNORE_INDEX).sum()), int(out.size)

    def mask(self, img_id: str, sal_path, n_classes: int) -> np.ndarray:
        pred = read_label_png(self.pred_dir / f'{img_id}.png', self.num_classes)
        pseudo = read_label_png(self.label_dir / f'{img_id}.png', self.num_classes)
        sal = read_gray_png(sal_path)
        try:
            return non_salient_region_mask(pred, pseudo, sal, n_classes, self.dilation,
                                           self.min_fg_ratio)
        except ValueError as exc:
            raise ValueError(f'image {img_id}: {exc}') from exc


@STAGES.register_module()
class MaskNonSalientRegions(PerImageStage):
    """NSRM labels from the first round's ``predictions`` and the pseudo ``labels``.

    Args:
        predictions: a TestSegmentor-like stage run on the training split
            (``artifacts.predictions``, ``split``), e.g. ``split='train'`` with the CRF.
        labels: the initial pseudo-label stage (``artifacts.labels``, ``split``), e.g. the
            RefineLabels stage with OAAProxyLabels + PotentialObjectMining.
        dilation: k, side of the dilation kernel (30).
        min_fg_ratio: the whole-image ignore rule (0.01).
        workers: processes (0 or 1: inline).  Not hashed: the labels are the same.

    The saliency maps are the dataset's (the data config's ``saliency_dir``); the number of
    image-level classes is the dataset's image label of each image.  Manifest counts:
    ``images``, ``computed`` (written by this run; existing files are kept), ``masked_images``
    (images with >= 2 classes, to which the masking applies) and ``ignored_images`` (labels
    that are 255 everywhere); metric ``ignored_fraction`` (255 pixels over all pixels).
    """

    reads = {'predictions': PREDICTIONS, 'labels': LABEL_SET}
    produces = (LABEL_SET,)
    revisit_finished = True            # the ignored fraction covers the images labelled before
    counted = ('images', 'computed')   # its manifests never had 'reused'
    output_file = ('labels', '.png')
    progress_label = 'masked labels'

    def __init__(self, name: str, predictions: str, labels: str, dilation: int = 30,
                 min_fg_ratio: float = 0.01, workers: int = 0):
        if int(dilation) < 1:
            raise StageError(f'[{name}] dilation must be >= 1, got {dilation}')
        super().__init__(name, predictions=predictions, labels=labels, dilation=int(dilation),
                         min_fg_ratio=float(min_fg_ratio))
        if int(workers) < 0:
            raise StageError(f'[{name}] workers must be >= 0, got {workers}')
        self.workers = int(workers)

    def _inputs(self, ctx: StageContext):
        o = self.options
        predictions, labels = self.read_input(ctx, 'predictions'), self.read_input(ctx, 'labels')
        pred_dir, pred_split = predictions.folder, predictions.split
        label_dir, split = labels.folder, labels.split
        if pred_split != split:
            raise StageError(
                f"[{self.name}] predictions='{o['predictions']}' covered split {pred_split!r} "
                f"but labels='{o['labels']}' covers split {split!r}: run the segmentor's test "
                f"stage with split={split!r}")
        return pred_dir, label_dir, split

    @staticmethod
    def _missing(folder: Path, records) -> List[str]:
        return [r.img_id for r in records if not (folder / f'{r.img_id}.png').is_file()]

    def _check(self, dataset, pred_dir: Path, label_dir: Path, split: str) -> None:
        o, recs = self.options, dataset.records
        if any(getattr(r, 'saliency_path', None) is None for r in recs):
            raise StageError(f'[{self.name}] the dataset of split {split!r} has no saliency '
                             "maps: NSRM needs them (set the data config's saliency_dir, e.g. "
                             "'saliency_aug')")
        unlabelled = [r.img_id for r in recs if not getattr(r, 'has_labels', True)]
        if unlabelled:
            raise StageError(f'[{self.name}] {len(unlabelled)} image(s) of split {split!r} have '
                             f'no image-level labels, e.g. {unlabelled[:3]}: NSRM masks only '
                             'images with two or more classes, so it needs them')
        for key, folder in (('predictions', pred_dir), ('labels', label_dir)):
            missing = self._missing(folder, recs)
            if missing:
                raise StageError(f"[{self.name}] {key}='{o[key]}' has no {folder.name}/<id>.png "
                                 f'for {len(missing)} of the {len(recs)} images of split '
                                 f'{split!r}, e.g. {missing[:3]} (was it run with max_samples?)')

    def setup(self, ctx: StageContext) -> None:
        self.pred_dir, self.label_dir, self.split = self._inputs(ctx)
        self.dataset = build_dataset(ctx.data_cfg, split=self.split, load_gt=False)
        self._check(self.dataset, self.pred_dir, self.label_dir, self.split)

    def job(self, ctx: StageContext) -> MaskJob:
        items = [(r.img_id, r.saliency_path, len(r.class_ids)) for r in self.dataset.records]
        return MaskJob(items, self.pred_dir, self.label_dir, Path(ctx.stage_dir) / 'labels',
                       self.dataset.num_classes, self.options['dilation'],
                       self.options['min_fg_ratio'])

    def summarise(self, ctx: StageContext, share) -> dict:
        records = self.dataset.records
        return dict(
            metrics=self._metrics(share.results),
            counts=dict(masked_images=sum(len(records[i].class_ids) >= 2 for i in share.items),
                        ignored_images=sum(r[1] == r[2] for r in share.results)),
            artifacts=LABEL_SET.record('labels', self.split, self.dataset))

    def merge_shards(self, ctx: StageContext, record: dict) -> dict:
        """Once every shard finished: ``ignored_fraction`` over all images, from the labels
        the shards wrote (read back); the counts were summed already."""
        self.setup(ctx)
        results = map_images(self.job(ctx), self.items(ctx), workers=self.workers,
                             desc=self.progress_desc('job'), progress=ctx.progress)
        return dict(record, metrics=self._metrics(results))

    @staticmethod
    def _metrics(results) -> dict:
        """``ignored_fraction``: 255 pixels over all pixels of ``results`` (MaskJob's)."""
        ignored_px, pixels = sum(r[1] for r in results), sum(r[2] for r in results)
        return dict(ignored_fraction=ignored_px / pixels if pixels else 0.0)
