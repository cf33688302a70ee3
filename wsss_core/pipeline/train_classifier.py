"""TrainClassifier: train an image-level classifier with an mmengine Runner.

Everything the Runner takes (``optim_wrapper``, ``param_scheduler``, ``custom_hooks``,
``default_hooks``, ``train_cfg``, ``sampler`` ...) is stage config, so method plugins add
their hooks (e.g. attention accumulation) and samplers (e.g. image pairs) by config.
Writes ``model.pth`` (weights only) and records the model config in the manifest, so later
stages rebuild the same network.
"""
from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Optional, Sequence

import torch
from mmengine.dist import is_main_process

from .. import compat
from ..datasets import build_dataset
from ..io import atomic_write
from ..registry import STAGES
from ..visualization.tensorboard import default_visualizer
from .artifacts import TRAINED_MODEL, merged_records
from .stage import StageContext, StageError, TrainingStage

_RUNNER_IDS = itertools.count()
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

    def produced_kinds(self) -> tuple:
        """A trained model, plus what its hooks publish (e.g. OAA's accumulated maps)."""
        return (TRAINED_MODEL,) + published_kinds(self.options.get('custom_hooks'))

    # ------------------------------------------------------------------ building
    def _data_cfg(self, ctx: StageContext) -> dict:
        cfg = ctx.data_cfg
        cfg.update(self.options.get('data') or {})
        return cfg

    def model_cfg(self, num_classes: int) -> dict:
        cfg = copy.deepcopy(dict(self.options['model']))
        cfg.setdefault('num_classes', num_classes)
        return cfg

    def _dataloader(self, dataset, batch_size, shuffle, sampler=None,
                    drop_last: bool = False) -> dict:
        cfg = dict(dataset=dataset, batch_size=batch_size,
                   num_workers=self.options['num_workers'],
                   persistent_workers=self.options['num_workers'] > 0,
                   sampler=sampler or dict(type='DefaultSampler', shuffle=shuffle),
                   collate_fn=dict(type='default_collate'))
        if drop_last:   # else mmengine's default
            cfg['drop_last'] = True
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

    def _runner(self, ctx: StageContext, model, train_set, val_set):
        from mmengine.runner import Runner
        o = self.options
        epochs = o['max_epochs']
        per_epoch = (len(train_set) // o['batch_size'] if o.get('drop_last')
                     else -(-len(train_set) // o['batch_size']))
        steps = epochs * max(1, per_epoch)
        optim = self.optim_wrapper_for_device(ctx, o['optim_wrapper'] or dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4)))
        sched = o['param_scheduler'] or self.default_schedule(optim['optimizer']['lr'], steps)
        hooks = dict(logger=dict(type='LoggerHook', interval=o['log_interval']),
                     checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                                     save_last=True))
        hooks.update(o['default_hooks'] or {})
        kwargs = dict(
            model=model, work_dir=str(ctx.stage_dir),
            experiment_name=f'{self.name}-{next(_RUNNER_IDS)}',  # unique mmengine instances
            train_dataloader=self._dataloader(train_set, o['batch_size'], True, o['sampler'],
                                              drop_last=bool(o.get('drop_last'))),
            train_cfg=dict(by_epoch=True, max_epochs=epochs, val_interval=epochs),
            optim_wrapper=optim, param_scheduler=sched,
            launcher=ctx.launcher, default_scope='wsss_core',
            env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
            log_processor=dict(by_epoch=True), visualizer=default_visualizer(),
            **self.protected_runner_kwargs(ctx, hooks))
        runner_cfg = self.runner_cfg(ctx)
        if runner_cfg:
            kwargs['cfg'] = runner_cfg
        if val_set is not None:
            kwargs.update(val_dataloader=self._dataloader(val_set, o['batch_size'], False),
                          val_evaluator=dict(type='MultiLabelMAP'), val_cfg=dict())
        return Runner(**kwargs)

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

    # ------------------------------------------------------------------ run
    def run(self, ctx: StageContext) -> dict:
        data_cfg = self._data_cfg(ctx)
        train_set = self.build_train_set(ctx, data_cfg)
        self.check_batches_per_epoch(train_set)
        val_set = None
        if self.options['val_split']:
            val_set = build_dataset(data_cfg, split=self.options['val_split'], load_gt=False,
                                    pipeline=[dict(type='PackInputs', keys=('img', 'labels'))])
        model_cfg = self.model_cfg(train_set.num_classes)
        model = self.build_model(ctx, model_cfg)
        runner = self._runner(ctx, model, train_set, val_set)
        with compat.allow_mmengine_checkpoints():
            runner.train()
        metrics = final_val_metrics(runner)
        if val_set is not None and not metrics:  # resumed after the last epoch had finished
            metrics = dict(runner.val())
        net = runner.model.module if hasattr(runner.model, 'module') else runner.model
        if is_main_process():   # one writer: the ranks' BN statistics may differ
            with atomic_write(Path(ctx.stage_dir) / 'model.pth') as fh:
                torch.save(net.state_dict(), fh)
        model_record = TRAINED_MODEL.record('model.pth', model_cfg, train_set.num_classes,
                                            train_set.class_names)
        return dict(metrics={k: float(v) for k, v in metrics.items()},
                    counts=dict(train_images=len(train_set),
                                val_images=len(val_set) if val_set is not None else 0),
                    artifacts=merged_records(model_record,
                                             *published_records(
                                                 runner, self.options['train_split'],
                                                 train_set)))


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


def published_kinds(custom_hooks) -> tuple:
    """The artifact kinds the hooks of ``custom_hooks`` publish through their stage (a hook
    class's ``publishes``, :mod:`~wsss_core.pipeline.artifacts`)."""
    from ..registry import HOOKS, lookup
    kinds = []
    for hook in custom_hooks or ():
        kind = hook.get('type') if isinstance(hook, dict) else None
        cls = kind if isinstance(kind, type) else lookup(HOOKS, kind) if kind else None
        published = getattr(cls, 'publishes', None)
        if published is not None and published not in kinds:
            kinds.append(published)
    return tuple(kinds)


def published_records(runner, split: str, train_set) -> list:
    """The artifact records that the runner's publishing hooks return after training
    (``hook.published_artifacts(runner, split, train_set)``), in hook order."""
    return [hook.published_artifacts(runner, split, train_set) for hook in runner.hooks
            if getattr(hook, 'publishes', None) is not None]
