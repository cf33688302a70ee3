"""TrainClassifier: train an image-level classifier, the epoch preset of the one trainer.

A preset of :class:`~wsss_core.pipeline.training_stage.TrainingStage`: epochs over
``train_split`` with image labels (flip + reflect-pad-8 crop by default), AdamW 2e-3 with a
one-cycle schedule unless the config gives ``optim_wrapper`` / ``param_scheduler``, mAP on
``val_split`` at the end.  Everything the Runner takes (``custom_hooks``, ``default_hooks``,
``sampler`` ...) is stage config, so method plugins add their hooks (e.g. attention
accumulation) and samplers (e.g. image pairs) by config.  Writes ``model.pth`` (weights
only) and records a trained-model artifact, so later stages rebuild the same network.
"""
from __future__ import annotations

import copy
from typing import Optional, Sequence

from ..datasets import build_dataset
from ..registry import STAGES
from .stage import StageContext, StageError
from .training_stage import TrainingStage, TrainLoop
DEFAULT_PIPELINE = (dict(type='RandomHorizontalFlip'), dict(type='RandomPadCrop', pad=8),
                    dict(type='PackInputs', keys=('img', 'labels')))


@STAGES.register_module()
class TrainClassifier(TrainingStage):
    """Train ``model`` on ``train_split`` with image-level labels; evaluate mAP on ``val_split``.

    Args:
        model: model config; ``num_classes`` defaults to the dataset's.
        max_epochs, batch_size, num_workers: the usual.
        pipeline: training transforms (default flip + reflect-pad-8 random crop).
        optim_wrapper / param_scheduler: mmengine configs (default AdamW 2e-3 + OneCycle).
        custom_hooks, default_hooks, sampler, data: passed to the Runner / dataloader.
        val_split: split for the final mAP (None to skip).
        log_interval: iterations between log lines.
        drop_last: drop the last, incomplete training batch of each epoch (for models whose
            BatchNorm cannot train on a batch of one, e.g. MoANA).
        **options: the options every training stage shares (``amp``, ``amp_dtype``,
            ``compile``, ``channels_last``, ``sync_bn``, ``find_unused_parameters``,
            ``nonfinite_loss``): :class:`~wsss_core.pipeline.stage.TrainingStage`.
    """

    def __init__(self, name: str, model: dict, max_epochs: int = 12, batch_size: int = 64,
                 num_workers: int = 0, train_split: str = 'train',
                 val_split: Optional[str] = 'val', pipeline: Optional[Sequence] = None,
                 optim_wrapper: Optional[dict] = None, param_scheduler=None,
                 custom_hooks: Sequence = (), default_hooks: Optional[dict] = None,
                 sampler: Optional[dict] = None, data: Optional[dict] = None,
                 log_interval: int = 10, drop_last: bool = False, **options):
        super().__init__(name, model=model, max_epochs=max_epochs, batch_size=batch_size,
                         num_workers=num_workers, train_split=train_split, val_split=val_split,
                         pipeline=pipeline, optim_wrapper=optim_wrapper,
                         param_scheduler=param_scheduler, custom_hooks=list(custom_hooks),
                         default_hooks=default_hooks, sampler=sampler, data=data,
                         log_interval=log_interval, drop_last=bool(drop_last), **options)
        self.check_types(model, custom_hooks)
        self.check_batch_size(model, batch_size)

    # ------------------------------------------------------------------ the preset
    def model_cfg(self, num_classes: int) -> dict:
        cfg = copy.deepcopy(dict(self.options['model']))
        cfg.setdefault('num_classes', num_classes)
        return cfg

    def check_batches_per_epoch(self, train_set) -> None:
        """With ``drop_last``, refuse (before the Runner is built) a training set that fills
        no batch: each process gets ``ceil(N / world_size)`` of its N images, and an epoch
        of ``floor(that / batch_size)`` batches must not be empty.  (A stage given its own
        ``sampler`` is left to it.)"""
        from mmengine.dist import get_world_size
        o = self.options
        if not o.get('drop_last') or o['sampler'] is not None:
            return
        world = get_world_size()
        per_process = -(-len(train_set) // world)
        if per_process >= o['batch_size']:
            return
        where = f' ({per_process} per process of {world})' if world > 1 else ''
        smaller = f'set batch_size={per_process} or less, ' if per_process else ''
        raise StageError(
            f"[{self.name}] the training split {o['train_split']!r} has {len(train_set)} "
            f"images{where}, fewer than batch_size={o['batch_size']}, and drop_last=True drops "
            f'that incomplete batch, leaving no training batch: {smaller}use a larger split, '
            'or set drop_last=False')

    def train_loop(self, train_set) -> TrainLoop:
        """``max_epochs`` epochs, validated after the last; the schedule spans every batch
        (the last, incomplete one of each epoch dropped with ``drop_last``)."""
        o = self.options
        epochs = o['max_epochs']
        per_epoch = (len(train_set) // o['batch_size'] if o.get('drop_last')
                     else -(-len(train_set) // o['batch_size']))
        return TrainLoop(dict(by_epoch=True, max_epochs=epochs, val_interval=epochs),
                         by_epoch=True, steps=epochs * max(1, per_epoch))

    def default_optim_wrapper(self) -> dict:
        """AdamW, lr 2e-3, weight decay 1e-4."""
        return dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))

    def default_hooks(self) -> dict:
        """A log line every ``log_interval`` iterations; a checkpoint every epoch (the last
        two kept)."""
        return dict(logger=dict(type='LoggerHook', interval=self.options['log_interval']),
                    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                                    save_last=True))

    def default_schedule(self, lr: float, total_steps: int) -> list:
        """The lr schedule when the config gives none (one-cycle); subclasses override."""
        return one_cycle_schedule(lr, total_steps)

    def train_pipeline(self, ctx: StageContext) -> list:
        """The training transforms: the ``pipeline`` option, or :data:`DEFAULT_PIPELINE`.

        Subclasses override this to add transforms (e.g. loading per-pixel targets).
        """
        return list(self.options['pipeline'] or DEFAULT_PIPELINE)

    def build_train_set(self, ctx: StageContext, data_cfg: dict):
        """The training dataset: ``train_split`` through :meth:`train_pipeline`.

        Subclasses override this to wrap or replace it (e.g. image pairs); the model's
        ``num_classes`` and the manifest's class names come from its ``num_classes`` and
        ``class_names``.
        """
        return build_dataset(data_cfg, split=self.options['train_split'],
                             pipeline=self.train_pipeline(ctx), load_gt=False)

    def datasets(self, ctx: StageContext):
        """``train_split`` through :meth:`build_train_set`, and ``val_split`` (or None)."""
        data_cfg = self.data_config(ctx)
        train_set = self.build_train_set(ctx, data_cfg)
        self.check_batches_per_epoch(train_set)
        val_set = None
        if self.options['val_split']:
            val_set = build_dataset(data_cfg, split=self.options['val_split'], load_gt=False,
                                    pipeline=[dict(type='PackInputs', keys=('img', 'labels'))])
        return train_set, val_set

    def record(self, ctx: StageContext, runner, net, train_set, val_set, model_cfg: dict) -> dict:
        """The final validation's metrics, the image counts, the trained model."""
        metrics = final_val_metrics(runner)
        if val_set is not None and not metrics:  # resumed after the last epoch had finished
            metrics = dict(runner.val())
        return dict(metrics={k: float(v) for k, v in metrics.items()},
                    counts=dict(train_images=len(train_set),
                                val_images=len(val_set) if val_set is not None else 0),
                    artifacts=self.model_artifacts(runner, train_set, model_cfg,
                                                   self.options['train_split']))


def one_cycle_schedule(lr: float, total_steps: int, pct_start: float = 0.15) -> list:
    """One-cycle as two mmengine schedulers: linear warm-up from lr/25, then cosine to lr/1e4.

    (mmengine's ``OneCycleLR`` stores a bound method in its state, which a checkpoint loaded
    with ``weights_only=True`` cannot hold; these two store plain numbers.)
    """
    warm = max(1, int(round(pct_start * total_steps)))
    return [dict(type='LinearLR', start_factor=1 / 25, end_factor=1.0, begin=0, end=warm,
                 by_epoch=False),
            dict(type='CosineAnnealingLR', eta_min=lr * 1e-4, begin=warm,
                 end=max(total_steps, warm + 1), T_max=max(1, total_steps - warm),
                 by_epoch=False)]


def final_val_metrics(runner) -> dict:
    """The metrics of the validation that ended training (``val/<name>`` in the message hub)."""
    scalars = runner.message_hub.log_scalars
    return {k[4:]: scalars[k].current() for k in scalars if k.startswith('val/')
            and k not in ('val/time', 'val/data_time')}
