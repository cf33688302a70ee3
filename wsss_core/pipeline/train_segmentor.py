"""TrainSegmentor: train a DeepLab segmentor on pseudo labels (or ground truth) with mmengine.

The reference recipe (deeplab-pytorch, ``docs/methods/deeplab.md`` §4.3 to §4.5), all of it
stage config:

* data: the images of a pseudo-label stage's split with its ``labels/<id>.png``
  (``labels='<stage>'``), or the data set's ground truth (``labels=None``); augmentation:
  random scale from (0.5, 0.75, 1.0, 1.25, 1.5), pad to 321 (label 255), random 321 crop,
  flip (:func:`~wsss_core.datasets.seg_transforms.deeplab_train_pipeline`);
* optimiser: SGD momentum 0.9, lr 2.5e-4, weight decay 5e-4, groups x1 / x10 / x20
  (:mod:`~wsss_core.optim.param_groups`), ``iter_size`` gradient accumulation (2);
* schedule: poly, power 0.9, over ``max_iters`` (20000) iterations, batch 5;
* checkpoints every ``checkpoint_interval`` iterations (5000) and at the end; ``--resume``
  continues from the last one.

An *iteration* is one optimiser update, as the reference's ``ITER_MAX`` counts them: it
takes ``iter_size`` batches (the mmengine Runner runs ``max_iters * iter_size`` batch
iterations, with ``accumulative_counts = iter_size``).  The poly lr is held over each
update's batches, so update ``u`` trains with ``lr (1 - u / max_iters)^0.9``, recomputed
every ``lr_interval`` updates (reference 10); the schedulers step only after the optimiser
has (:mod:`wsss_core.pipeline.accumulation`), never before it.

Writes ``model.pth`` (weights only) and records the model config (without initial-weight
paths, which the trained weights replace) in the manifest's ``artifacts.model``, so that
TestSegmentor (or any later stage) rebuilds the same network.
"""
from __future__ import annotations

import copy
from typing import Optional, Sequence

from ..datasets import build_dataset
from ..datasets.seg_samples import SegmentationSamples
from ..datasets.seg_transforms import deeplab_train_pipeline
from ..optim.poly_schedule import poly_schedule
from ..registry import STAGES
from .accumulation import UpdateParamSchedulerHook
from .artifacts import LABEL_SET
from .recipe_fragments import RECIPE_FRAGMENT_HINT
from .stage import StageContext, StageError
from .training_stage import TrainingStage, TrainLoop

__all__ = ['TrainSegmentor', 'reference_optim_wrapper', 'inference_model_cfg']

REFERENCE_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)


def reference_optim_wrapper(lr: float = 2.5e-4, momentum: float = 0.9,
                            weight_decay: float = 5e-4, iter_size: int = 1) -> dict:
    """SGD with DeepLab's parameter groups; ``iter_size`` accumulates gradients (loss / n)."""
    return dict(type='OptimWrapper', accumulative_counts=int(iter_size),
                optimizer=dict(type='SGD', lr=lr, momentum=momentum, weight_decay=weight_decay),
                constructor='DeepLabOptimWrapperConstructor')


def inference_model_cfg(model_cfg: dict) -> dict:
    """The model config without initial-weight sources (the trained weights replace them)."""
    cfg = copy.deepcopy(dict(model_cfg))
    cfg.pop('init_checkpoint', None)
    cfg.pop('load_head', None)
    backbone = cfg.get('backbone')
    if isinstance(backbone, dict):
        backbone = dict(backbone)
        for key in ('pretrained', 'timm_weights', 'checkpoint'):
            backbone.pop(key, None)
        if backbone.get('type') == 'TimmBackbone':
            backbone['pretrained'] = False
        cfg['backbone'] = backbone
    return cfg


@STAGES.register_module()
class TrainSegmentor(TrainingStage):
    """Train ``model`` (e.g. ``DeepLabV2``) on pseudo labels or ground truth.

    Args:
        model: model config; ``num_classes`` defaults to the data set's classes + background.
        labels: a stage whose manifest has ``artifacts.labels`` (a folder of label PNGs) and
            ``artifacts.split``; None trains on the data set's ground truth.
        train_split: the split (default: the labels stage's, else 'train').
        max_iters: optimiser updates (reference 20000), each of ``iter_size`` batches (2) of
            ``batch_size`` crops (5).
        lr, momentum, weight_decay, power: the recipe (2.5e-4, 0.9, 5e-4, 0.9).
        lr_interval: recompute the poly lr every n updates (reference 10; 1 = every one).
        checkpoint_interval: in updates.
        crop_size, scales, flip: the augmentation; ``pipeline`` replaces it entirely.
        optim_wrapper / param_scheduler: mmengine configs replacing the recipe's (their
            iterations are batch iterations).
        log_interval (batch iterations), num_workers, custom_hooks, default_hooks,
        data (dataset overrides), max_samples: the usual.
        **options: the options every training stage shares (``amp``, ``amp_dtype``,
            ``compile``, ``channels_last``, ``sync_bn``, ``find_unused_parameters``,
            ``nonfinite_loss``): :class:`~wsss_core.pipeline.stage.TrainingStage`.

    The published settings are config fragments that define this stage by name:
    ``_base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py']`` (or ``_recipes/synthetic.py``).
    """

    reads = {'labels': LABEL_SET}

    #: options it no longer takes, with the way forward (the refusal's hint)
    retired_options = {'recipe': RECIPE_FRAGMENT_HINT}

    def __init__(self, name: str, model: Optional[dict] = None, labels: Optional[str] = None,
                 train_split: Optional[str] = None, max_iters: int = 20000, batch_size: int = 5,
                 iter_size: int = 1, lr: float = 2.5e-4, momentum: float = 0.9,
                 weight_decay: float = 5e-4, power: float = 0.9, lr_interval: int = 1,
                 crop_size: int = 321, scales: Sequence[float] = REFERENCE_SCALES,
                 flip: bool = True, pipeline: Optional[Sequence] = None,
                 optim_wrapper: Optional[dict] = None, param_scheduler=None,
                 checkpoint_interval: int = 5000, log_interval: int = 50, num_workers: int = 0,
                 custom_hooks: Sequence = (), default_hooks: Optional[dict] = None,
                 data: Optional[dict] = None, max_samples: Optional[int] = None, **options):
        if model is None:
            raise StageError(f"[{name}] TrainSegmentor needs a 'model' (the published ones: "
                             "_base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py'] or "
                             "'deeplab::_recipes/synthetic.py')")
        if int(max_iters) < 1 or int(batch_size) < 1 or int(iter_size) < 1:
            raise StageError(f'[{name}] max_iters, batch_size and iter_size must be >= 1')
        super().__init__(name, model=dict(model), labels=labels, train_split=train_split,
                         max_iters=int(max_iters), batch_size=int(batch_size),
                         iter_size=int(iter_size), lr=float(lr), momentum=float(momentum),
                         weight_decay=float(weight_decay), power=float(power),
                         lr_interval=int(lr_interval), crop_size=int(crop_size),
                         scales=[float(s) for s in scales], flip=bool(flip),
                         pipeline=pipeline, optim_wrapper=optim_wrapper,
                         param_scheduler=param_scheduler,
                         checkpoint_interval=int(checkpoint_interval),
                         log_interval=int(log_interval), num_workers=int(num_workers),
                         custom_hooks=[dict(h) for h in custom_hooks],
                         default_hooks=default_hooks, data=data, max_samples=max_samples,
                         **options)
        self.check_types(model, custom_hooks)
        self.check_batch_size(model, batch_size)

    # ------------------------------------------------------------------ the preset
    def label_source(self, ctx: StageContext):
        """``(label folder or None, split)``: the ``labels`` stage's label set, or None and
        the ground truth of ``train_split`` (default 'train')."""
        if self.options['labels'] is None:
            return None, self.options['train_split'] or 'train'
        labels = self.read_input(ctx, 'labels')
        return labels.folder, self.options['train_split'] or labels.split

    def build_train_set(self, ctx: StageContext, data_cfg: dict) -> SegmentationSamples:
        """The images of the split with their label maps, through the augmentation."""
        o = self.options
        label_dir, split = self.label_source(ctx)
        base = build_dataset(data_cfg, split=split, load_gt=label_dir is None,
                             max_samples=o['max_samples'])
        label_key = 'pseudo_seg' if label_dir is not None else 'gt_seg'
        pipeline = o['pipeline'] or deeplab_train_pipeline(o['crop_size'], o['scales'],
                                                           label_key, o['flip'])
        return SegmentationSamples(base, label_dir, pipeline)

    def datasets(self, ctx: StageContext):
        """The training samples; no validation (TestSegmentor evaluates)."""
        return self.build_train_set(ctx, self.data_config(ctx)), None

    def model_cfg(self, num_classes: int) -> dict:
        cfg = copy.deepcopy(self.options['model'])
        cfg.setdefault('num_classes', num_classes + 1)
        return cfg

    def train_loop(self, train_set) -> TrainLoop:
        """``max_iters`` optimiser updates of ``iter_size`` batches each: mmengine runs
        ``max_iters * iter_size`` batch iterations (and never validates)."""
        batches = self.options['max_iters'] * self.options['iter_size']
        return TrainLoop(dict(by_epoch=False, max_iters=batches, val_interval=batches + 1),
                         by_epoch=False, steps=batches)

    def train_sampler(self) -> dict:
        """An endless shuffled stream of the training samples (iterations, not epochs)."""
        return dict(type='InfiniteSampler', shuffle=True)

    def default_optim_wrapper(self) -> dict:
        """SGD with DeepLab's parameter groups (:func:`reference_optim_wrapper`)."""
        o = self.options
        return reference_optim_wrapper(o['lr'], o['momentum'], o['weight_decay'],
                                       o['iter_size'])

    def default_schedule(self, lr: float, total_steps: int) -> list:
        """Poly ``power`` over the batch iterations, recomputed every ``lr_interval``
        updates (the optimiser's lr is the base)."""
        o = self.options
        return poly_schedule(total_steps, o['power'], interval=o['lr_interval'] * o['iter_size'])

    def default_hooks(self) -> dict:
        """Logs every ``log_interval`` batch iterations, checkpoints every
        ``checkpoint_interval`` updates (the last two kept), and the schedulers stepped after
        the optimiser (with ``iter_size > 1``, never before it)."""
        o = self.options
        return dict(logger=dict(type='LoggerHook', interval=o['log_interval']),
                    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                    interval=o['checkpoint_interval'] * o['iter_size'],
                                    max_keep_ckpts=2, save_last=True),
                    param_scheduler=dict(type=UpdateParamSchedulerHook))

    def record(self, ctx: StageContext, runner, net, train_set, val_set, model_cfg: dict) -> dict:
        """The last loss, the update / batch counts, the trained model (its config without
        initial-weight sources) and where its initial weights came from."""
        metrics = {}
        scalars = runner.message_hub.log_scalars
        if 'train/loss' in scalars:
            metrics['final_loss'] = float(scalars['train/loss'].current())
        return dict(
            metrics=metrics,
            counts=dict(train_images=len(train_set), iterations=self.options['max_iters'],
                        batches=self.options['max_iters'] * self.options['iter_size'],
                        ignored_batches=int(getattr(net, 'num_ignored_batches', 0))),
            artifacts=dict(self.model_artifacts(runner, train_set, inference_model_cfg(model_cfg),
                                                train_set.dataset.split),
                           trained_on=self.options['labels'] or 'ground_truth',
                           split=train_set.dataset.split,
                           init=_init_record(model_cfg)))


def _init_record(model_cfg: dict) -> dict:
    """Where the initial weights came from (recorded: it moves results by 1-3 mIoU)."""
    backbone = model_cfg.get('backbone') or {}
    return dict(init_checkpoint=model_cfg.get('init_checkpoint'),
                backbone_pretrained=backbone.get('pretrained') or backbone.get('checkpoint'),
                backbone_timm_weights=backbone.get('timm_weights'),
                input_style=model_cfg.get('input_style', 'imagenet'))
