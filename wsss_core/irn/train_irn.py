"""TrainIRN: train the inter-pixel relation network (IRN, Ahn, Cho & Kwak, CVPR 2019) on IR labels.

The IR labels are a RefineLabels-like stage's PNGs (0 background, 1..C classes, 255 unsure;
e.g. the ``IRLabels`` refiner), read per image next to the dataset's images
(:class:`IRLabelSamples`).  The label travels through the joint transforms as ``pseudo_seg``
(a pixel map every geometric transform moves, padded with 255) and reaches the model as
``ir_label``.  Training is :class:`~wsss_core.pipeline.train_classifier.TrainClassifier`'s
mmengine Runner with IRN's recipe (``docs/methods/baseline.md#45-irn-training``):

* random rescale (0.5, 1.5), horizontal flip, random crop 512 (padding: mean colour, label 255);
* batch 32, 3 epochs, SGD lr 0.1 (boundary branch x1, displacement branch x10), weight decay
  1e-4, momentum 1e-4 (the reference's effective value, see :class:`TrainIRN`), poly decay
  ``lr_t = lr_0 (1 - t / T)^0.9`` per iteration;
* no validation; ``model.pth`` and the model config go into the manifest as a trained-model
  artifact, as TrainClassifier's do, so a later stage (``RandomWalkLabels(irn=)``) rebuilds
  the network.

Backbone (``docs/methods/moana.md#8-the-wsss-route``, an explicit choice):
``backbone_from=None`` keeps the model's own backbone weights (the ImageNet ``checkpoint=`` of
its backbone config, or its initial weights), as the original IRN;
``backbone_from='<TrainClassifier stage>'`` copies that stage's trained ``backbone.*`` weights
into the frozen IRN backbone (every IRN backbone tensor must be found there with the same
shape; the source's extra tensors are counted in the manifest as ``backbone_unused``).

Not done: IRN stores the mean displacement over the inference images after training; it only
matters for instance segmentation, which this framework does not produce.
"""
from __future__ import annotations

import copy
from typing import Optional, Sequence, Tuple

import torch

from ..datasets import build_dataset
from ..datasets.seg_samples import SegmentationSamples
from ..pipeline.artifacts import LABEL_SET, TRAINED_MODEL, TrainedModel
from ..pipeline.schedules import poly_schedule
from ..pipeline.stage import StageContext, StageError
from ..pipeline.train_classifier import TrainClassifier
from ..registry import STAGES

__all__ = ['IRLabelSamples', 'TrainIRN', 'irn_train_pipeline', 'irn_optim_wrapper']

#: the transform key the IR label travels under (moved by every geometric transform)
CARRIER_KEY = 'pseudo_seg'


def IRLabelSamples(dataset, label_dir, pipeline: Optional[Sequence] = None) -> SegmentationSamples:
    """``dataset`` samples plus the IR label read from ``<label_dir>/<img_id>.png`` as
    ``pseudo_seg`` (so the joint transforms move it), renamed ``ir_label`` (the model's
    argument) after ``pipeline``.  Every image must have a label of its own size (checked on
    load, missing files listed up front)."""
    return SegmentationSamples(dataset, label_dir, pipeline, output_key='ir_label',
                               what='IR label')


def irn_train_pipeline(crop: int = 512, rescale: Optional[Tuple[float, float]] = (0.5, 1.5),
                       flip: bool = True) -> list:
    """IRN's joint transforms: rescale, flip, crop (image padded with the mean colour, label
    with 255), then packing of the image and the label."""
    pipeline = []
    if rescale:
        pipeline.append(dict(type='RandomRescale', scale_range=tuple(rescale)))
    if flip:
        pipeline.append(dict(type='RandomHorizontalFlip'))
    pipeline += [dict(type='RandomPadCrop', size=int(crop), img_pad_mode='mean'),
                 dict(type='PackInputs', keys=('img', CARRIER_KEY))]
    return pipeline


def irn_optim_wrapper(lr: float = 0.1, weight_decay: float = 1e-4, momentum: float = 1e-4,
                      displacement_lr_mult: float = 10.0) -> dict:
    """SGD over the two branches: lr x1 for the boundary branch, ``displacement_lr_mult`` for
    the displacement branch (mmengine's ``custom_keys``); the frozen backbone gets no update."""
    return dict(type='OptimWrapper',
                optimizer=dict(type='SGD', lr=float(lr), momentum=float(momentum),
                               weight_decay=float(weight_decay)),
                paramwise_cfg=dict(custom_keys={
                    'displacement_branch': dict(lr_mult=float(displacement_lr_mult))}))


@STAGES.register_module()
class TrainIRN(TrainClassifier):
    """Train :class:`~wsss_core.irn.model.InterPixelRelationNet` on the IR labels of ``labels``.

    Args:
        labels: the stage holding the IR label PNGs (manifest artifacts ``labels``, the
            folder, and ``split``).
        model: model config (default ``InterPixelRelationNet`` with a ResNet-50 backbone;
            give its backbone a local ImageNet ``checkpoint=``).
        crop, rescale, flip: the joint transforms (:func:`irn_train_pipeline`); ``pipeline``
            replaces them (it must pack ``pseudo_seg``).
        batch_size, max_epochs: 32 and 3 as IRN.
        lr, displacement_lr_mult, weight_decay, momentum, power: the SGD + poly recipe
            (:func:`irn_optim_wrapper`, :func:`poly_schedule`); ``optim_wrapper`` /
            ``param_scheduler`` replace them.  ``momentum`` defaults to 1e-4, what IRN's
            reference optimiser effectively uses (it passes its weight decay into SGD's
            momentum slot): lr 0.1 / 1.0 were tuned without momentum, and with 0.9 the
            effective step would be ten times larger.
        backbone_from: None, or a TrainClassifier stage whose trained backbone is copied in
            (module docstring).
        train_split: default the labels stage's ``split``.
        Other options (``num_workers``, ``custom_hooks``, ``amp`` ...) as TrainClassifier.
    """

    reads = {'labels': LABEL_SET, 'backbone_from': TRAINED_MODEL}

    def __init__(self, name: str, labels: str, model: Optional[dict] = None, crop: int = 512,
                 rescale: Optional[Sequence[float]] = (0.5, 1.5), flip: bool = True,
                 batch_size: int = 32, max_epochs: int = 3, lr: float = 0.1,
                 displacement_lr_mult: float = 10.0, weight_decay: float = 1e-4,
                 momentum: float = 1e-4, power: float = 0.9,
                 backbone_from: Optional[str] = None, train_split: Optional[str] = None,
                 val_split: Optional[str] = None, optim_wrapper: Optional[dict] = None,
                 **options):
        if not isinstance(labels, str) or not labels:
            raise StageError(f"[{name}] labels must name the stage holding the IR label PNGs, "
                             f'not {labels!r}')
        if backbone_from is not None and (not isinstance(backbone_from, str) or not backbone_from):
            raise StageError(f'[{name}] backbone_from must be None or the name of a '
                             f'TrainClassifier stage, not {backbone_from!r}')
        if val_split is not None:
            raise StageError(f'[{name}] TrainIRN has no validation (IRN validates nothing); '
                             'remove val_split')
        model = dict(model or {})
        model.setdefault('type', 'InterPixelRelationNet')
        optim_wrapper = optim_wrapper or irn_optim_wrapper(lr, weight_decay, momentum,
                                                           displacement_lr_mult)
        super().__init__(name, model=model, batch_size=batch_size, max_epochs=max_epochs,
                         train_split=train_split, val_split=None, optim_wrapper=optim_wrapper,
                         labels=labels, crop=int(crop),
                         rescale=list(rescale) if rescale else None, flip=bool(flip), lr=lr,
                         displacement_lr_mult=displacement_lr_mult, weight_decay=weight_decay,
                         momentum=momentum, power=power, backbone_from=backbone_from,
                         **options)

    # ------------------------------------------------------------------ building
    def train_pipeline(self, ctx: StageContext) -> list:
        o = self.options
        return list(o['pipeline'] or irn_train_pipeline(o['crop'], o['rescale'], o['flip']))

    def build_train_set(self, ctx: StageContext, data_cfg: dict) -> IRLabelSamples:
        labels = self.read_input(ctx, 'labels')
        split = self.options['train_split'] or labels.split
        base = build_dataset(data_cfg, split=split, load_gt=False)
        return IRLabelSamples(base, labels.folder, self.train_pipeline(ctx))

    def model_cfg(self, num_classes: int) -> dict:
        """The model config as given (the IRN is class-agnostic: no ``num_classes``)."""
        return copy.deepcopy(dict(self.options['model']))

    def default_schedule(self, lr: float, total_steps: int) -> list:
        return poly_schedule(total_steps, self.options['power'])

    def build_model(self, ctx: StageContext, model_cfg: dict):
        model = super().build_model(ctx, model_cfg)
        self._backbone_copy = None
        if self.options['backbone_from']:
            self._backbone_copy = copy_backbone(self.read_input(ctx, 'backbone_from'), model,
                                                self.name)
        return model

    # ------------------------------------------------------------------ run
    def run(self, ctx: StageContext) -> dict:
        record = super().run(ctx)
        art = record['artifacts']
        art['trained_on'] = self.options['labels']
        art['backbone_from'] = self.options['backbone_from']
        if self._backbone_copy is not None:
            record['counts'].update(backbone_copied=self._backbone_copy['copied'],
                                    backbone_unused=self._backbone_copy['unused'])
        return record


def copy_backbone(trained: TrainedModel, model, stage: str = 'TrainIRN') -> dict:
    """Copy the ``backbone.*`` weights of the ``trained`` model (a training stage's
    :class:`~wsss_core.pipeline.artifacts.TrainedModel`) into ``model.backbone``; every
    tensor of ``model.backbone`` must be there with its shape.

    Returns ``{'copied': n, 'unused': m}`` (``m`` source backbone tensors the IRN backbone
    does not have, e.g. a CAM-only attention block).
    """
    source = trained.stage
    state = torch.load(trained.weights, map_location='cpu', weights_only=True)
    prefix = 'backbone.'
    found = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    target = model.backbone.state_dict()
    missing = [k for k in target if k not in found]
    wrong = [f'{k} {tuple(found[k].shape)} vs {tuple(v.shape)}' for k, v in target.items()
             if k in found and found[k].shape != v.shape]
    if missing or wrong:
        raise StageError(f"[{stage}] backbone_from='{source}': its backbone does not fit the "
                         f'IRN backbone ({len(missing)} tensors missing, e.g. {missing[:3]}; '
                         f'{len(wrong)} of another shape, e.g. {wrong[:2]}); build the IRN '
                         "backbone like that stage's, or set backbone_from=None")
    model.backbone.load_state_dict({k: found[k] for k in target})
    return dict(copied=len(target), unused=len(set(found) - set(target)))
