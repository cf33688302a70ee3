"""Training the integral attention model (OAA+): its targets and its stage.

The model and its training: ``docs/methods/oaa.md#27-integral-attention-model``.

:class:`LoadAttentionTargets` reads the accumulated maps the OAA hook exported as per-pixel
targets; :class:`TrainIntegralAttention` is :class:`~wsss_core.pipeline.TrainClassifier`
with that transform first and the integral attention loss
(:mod:`wsss_oaa.integral_attention`).  The pipeline must keep the image geometry fixed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from wsss_core.datasets import build_dataset
from wsss_core.datasets.transforms import (PackInputs, RandomHorizontalFlip, RandomPadCrop,
                                           RandomRescale)
from wsss_core.io import DataFileError, load_cam
from wsss_core.pipeline.artifacts import FEATURE_CAMS
from wsss_core.pipeline.stage import StageContext, StageError
from wsss_core.pipeline.train_classifier import TrainClassifier
from wsss_core.registry import STAGES, TRANSFORMS, lookup


#: transforms that move pixels: the targets (fixed, at CAM resolution) would no longer align
GEOMETRIC_TRANSFORMS = (RandomHorizontalFlip, RandomPadCrop, RandomRescale)


# ----------------------------------------------------------------------------- targets
@TRANSFORMS.register_module()
class LoadAttentionTargets:
    """Add ``sample['attention']``: float32 (C, h, w) targets from ``root/<img_id>.npz``.

    The file is a core CAM file (:func:`wsss_core.io.save_cam`: class ids + maps in [0, 1] at
    the classifier's CAM resolution), as the OAA accumulation hook writes it.  Channel c holds
    the map of class c when c is one of the image's labels, and zeros otherwise (absent
    classes, or a label without a map).  A missing file is a DataFileError naming it.

    Geometry: the targets are fixed maps of the *unflipped, uncropped* image, and they are not
    a pixel map at image size, so no geometric transform moves them.  OAA trains both networks
    geometry-free (``Resize`` + colour jitter only), and :class:`TrainIntegralAttention`
    refuses pipelines with a flip, crop or rescale.

    Args:
        root: folder of the ``<img_id>.npz`` files.
        num_classes: C (default: the length of ``sample['labels']``).
    """

    def __init__(self, root, num_classes: Optional[int] = None):
        self.root = Path(root).expanduser()
        self.num_classes = int(num_classes) if num_classes is not None else None

    def __call__(self, sample: dict) -> dict:
        path = self.root / f"{sample['img_id']}.npz"
        if not path.is_file():
            raise DataFileError(f'attention targets not found: {path} (image '
                                f"{sample['img_id']}; LoadAttentionTargets root {self.root})")
        maps, class_ids = load_cam(path)
        labels = sample.get('labels')
        num_classes = self.num_classes if self.num_classes is not None else len(labels)
        if labels is not None and len(labels) != num_classes:
            raise ValueError(f"image {sample['img_id']} has {len(labels)} labels, "
                             f'LoadAttentionTargets num_classes is {num_classes}')
        bad = [int(c) for c in class_ids if not 0 <= c < num_classes]
        if bad:
            raise DataFileError(f'{path}: class id(s) {bad} outside 0..{num_classes - 1}')
        target = np.zeros((num_classes,) + maps.shape[1:], dtype=np.float32)
        for c, m in zip(class_ids, maps):
            if labels is None or labels[c] > 0:
                target[c] = m
        sample['attention'] = target
        return sample

    def __repr__(self) -> str:
        return f'LoadAttentionTargets(root={str(self.root)!r}, num_classes={self.num_classes})'


# ----------------------------------------------------------------------------- stage
def _transform_class(transform):
    return lookup(TRANSFORMS, transform['type']) if isinstance(transform, dict) else type(transform)


def check_attention_pipeline(pipeline: Sequence) -> None:
    """Raise StageError if the pipeline would misalign or drop the attention targets.

    Refused: a flip / pad-crop / rescale (:data:`GEOMETRIC_TRANSFORMS`, subclasses included),
    a second LoadAttentionTargets, and a PackInputs whose ``keys`` leave out 'attention'.
    """
    for transform in pipeline:
        cls = _transform_class(transform)
        if isinstance(cls, type) and issubclass(cls, GEOMETRIC_TRANSFORMS):
            raise StageError(f'{cls.__name__} in an integral-attention pipeline would misalign '
                             'the attention targets (fixed maps of the unmoved image): OAA '
                             'trains geometry-free, use Resize / ColorJitter only')
        if isinstance(cls, type) and issubclass(cls, LoadAttentionTargets):
            raise StageError('TrainIntegralAttention adds LoadAttentionTargets itself; '
                             'remove it from the pipeline')
        if isinstance(cls, type) and issubclass(cls, PackInputs):
            keys = transform.get('keys', ('img', 'labels')) if isinstance(transform, dict) \
                else transform.keys
            if 'attention' not in keys:
                raise StageError(f"PackInputs keys {tuple(keys)} leave out 'attention', the "
                                 'targets of the integral attention loss')


@STAGES.register_module()
class TrainIntegralAttention(TrainClassifier):
    """Train the integral attention model (OAA+) on the maps accumulated by ``targets``.

    The training pipeline is ``[LoadAttentionTargets(root=<work_dir>/<targets>/accumulated,
    num_classes)]`` followed by ``pipeline`` (default: only
    ``PackInputs(keys=('img', 'labels', 'attention'))``; OAA uses ``Resize(short_side=224)`` +
    ``ColorJitter`` before it, the same as for the classifier, so that targets and output have
    the same size).  The pipeline must be geometry-free (see
    :func:`check_attention_pipeline`).  Every training image must have a target file; the
    missing ones are listed before any training.

    Args:
        targets: the classifier stage (TrainClassifier with the OAA accumulation hook) whose
            ``accumulated/<img_id>.npz`` are the targets.
        model: default type :class:`IntegralAttentionModel`.
        val_split: None by default (the reference validates nothing; a split gives the mAP of
            the spatially pooled output).
        Other options: as :class:`~wsss_core.pipeline.train_classifier.TrainClassifier`.
    """

    reads = {'targets': FEATURE_CAMS}

    def __init__(self, name: str, targets: str, model: dict,
                 pipeline: Optional[Sequence] = None, val_split: Optional[str] = None,
                 **options):
        if not isinstance(targets, str) or not targets:
            raise StageError(f"stage '{name}': targets must name the classifier stage whose "
                             f'accumulated maps are the targets, not {targets!r}')
        pipeline = list(pipeline) if pipeline is not None else [
            dict(type='PackInputs', keys=('img', 'labels', 'attention'))]
        check_attention_pipeline(pipeline)
        model = dict(model)
        model.setdefault('type', 'IntegralAttentionModel')
        super().__init__(name, model=model, pipeline=pipeline, val_split=val_split,
                         targets=targets, **options)

    def targets_dir(self, ctx: StageContext) -> Path:
        """The folder of the accumulated maps that ``targets`` published."""
        return self.read_input(ctx, 'targets').folder

    def train_pipeline(self, ctx: StageContext) -> list:
        targets = self.read_input(ctx, 'targets')
        load = dict(type='LoadAttentionTargets', root=str(targets.folder),
                    num_classes=targets.num_classes)
        return [load] + list(self.options['pipeline'])

    def check_targets(self, ctx: StageContext) -> int:
        """Raise StageError unless every training image has a target file; return the count."""
        root = self.targets_dir(ctx)
        dataset = build_dataset(self.data_config(ctx), split=self.options['train_split'],
                                load_gt=False)
        missing = [i for i in dataset.img_ids if not (root / f'{i}.npz').is_file()]
        if missing:
            raise StageError(f"{len(missing)} of {len(dataset)} training images have no "
                             f'accumulated map in {root} (e.g. {missing[:3]}): run '
                             f"'{self.options['targets']}' with the OAA accumulation hook")
        return len(dataset)

    def run(self, ctx: StageContext) -> dict:
        n_targets = self.check_targets(ctx)
        record = super().run(ctx)
        root = self.targets_dir(ctx)
        record['counts']['target_files'] = n_targets
        record['artifacts'].update(trained_on=self.options['targets'],
                                   targets_dir=str(root.relative_to(ctx.work_dir)))
        return record
