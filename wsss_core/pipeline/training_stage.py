"""TrainingStage: the one base of the stages that train a network with an mmengine Runner.

One training stage run (:meth:`TrainingStage.run`):

1. :meth:`~TrainingStage.datasets` -> the training set (and a validation set or None);
2. :meth:`~TrainingStage.model_cfg` (the data set's class count filled in) and
   :meth:`~TrainingStage.build_model` (every generator seeded from the run's seed first;
   ``compile`` and ``channels_last`` applied);
3. :meth:`~TrainingStage.build_runner`, the one Runner builder: the loop of
   :meth:`~TrainingStage.train_loop` (epochs or iterations), the training dataloader
   (:meth:`~TrainingStage.train_dataloader`), the ``optim_wrapper`` / ``param_scheduler``
   options or :meth:`~TrainingStage.default_optim_wrapper` /
   :meth:`~TrainingStage.default_schedule`, :meth:`~TrainingStage.default_hooks` updated by
   the ``default_hooks`` option, validation (:meth:`~TrainingStage.validation`) when there is
   a validation set, and the protections every training stage has
   (:meth:`~TrainingStage.protected_runner_kwargs`: atomic checkpoints, the non-finite loss
   guard, exact resume, the progress bar) and the distributed settings
   (:meth:`~TrainingStage.runner_cfg`);
4. ``runner.train()``; one process writes ``model.pth`` (weights only);
5. :meth:`~TrainingStage.record`: metrics, counts and the artifacts -- a trained model
   (:data:`~wsss_core.pipeline.artifacts.TRAINED_MODEL`) plus what the stage's hooks publish
   (:meth:`~TrainingStage.model_artifacts`).

A training stage is a preset of these extension points (all public; a subclass overrides
only them): :class:`~wsss_core.pipeline.train_classifier.TrainClassifier` (epochs, image
labels, mAP) and :class:`~wsss_core.pipeline.train_segmentor.TrainSegmentor` (optimiser
updates, label maps), and theirs (TrainIRN, TrainIntegralAttention, TrainPairClassifier,
TrainGETAM).  The options every training stage shares are declared and checked in one place,
:meth:`TrainingStage.__init__`.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .artifacts import PRETRAINED
from .stage import Stage, StageContext, StageError

__all__ = ['TrainingStage', 'TrainLoop', 'WEIGHTS', 'published_kinds', 'published_records']

#: the trained weights every training stage writes (a state dict, loaded ``weights_only``)
WEIGHTS = 'model.pth'
#: one counter for every Runner of the process: mmengine instances need unique names
_RUNNER_IDS = itertools.count()


@dataclass(frozen=True)
class TrainLoop:
    """How a training stage loops: mmengine's ``train_cfg``, whether logs and checkpoints
    count epochs (``by_epoch``), and ``steps``, the scheduler steps of the whole run (what
    :meth:`TrainingStage.default_schedule` spans)."""
    train_cfg: dict
    by_epoch: bool
    steps: int


def published_kinds(custom_hooks) -> tuple:
    """The artifact kinds the hooks of ``custom_hooks`` publish through their stage (a hook
    class's ``publishes``, :mod:`~wsss_core.pipeline.artifacts`)."""
    from ..registry import HOOKS, lookup
    kinds = []
    for hook in custom_hooks or ():
        kind = hook.get('type') if isinstance(hook, dict) else None
        cls = lookup(HOOKS, kind) if kind else None
        published = getattr(cls, 'publishes', None)
        if published is not None and published not in kinds:
            kinds.append(published)
    return tuple(kinds)


def published_records(runner, split: str, train_set) -> list:
    """The artifact records that the runner's publishing hooks return after training
    (``hook.published_artifacts(runner, split, train_set)``), in hook order."""
    return [hook.published_artifacts(runner, split, train_set) for hook in runner.hooks
            if getattr(hook, 'publishes', None) is not None]


class TrainingStage(Stage):
    """Base of stages that train with an mmengine Runner.

    They resume from checkpoints only with ``--resume``, their hash covers the run's seed,
    and the model and hook types are checked when the stage is built (before any work).
    """

    #: every training stage may start its backbone from a Pretrain stage's weights
    reads = {'pretrained_from': PRETRAINED}

    #: DDP's ``find_unused_parameters`` for this stage's model (the stage option of that name
    #: overrides it): True for a model that leaves parameters without gradient in some steps
    find_unused_parameters: bool = False

    def __init_subclass__(cls, **kwargs):
        """Every training stage reads ``pretrained_from``, besides what its class declares."""
        super().__init_subclass__(**kwargs)
        own = dict(cls.__dict__.get('reads', cls.reads))
        cls.reads = {**own, **{k: v for k, v in TrainingStage.reads.items() if k not in own}}

    def __init__(self, name: str, amp=False, amp_dtype: Optional[str] = None, compile=False,
                 channels_last: bool = False, sync_bn: bool = False,
                 find_unused_parameters: Optional[bool] = None,
                 nonfinite_loss: Optional[str] = None, pretrained_from: Optional[str] = None,
                 pretrained_key: str = 'backbone', **options):
        """The options every training stage shares, parsed and checked in this one place:

        * ``amp`` / ``amp_dtype``: mixed precision (False, True or 'auto': on CUDA only),
          :mod:`~wsss_core.pipeline.mixed_precision`;
        * ``compile``: ``torch.compile`` the model's forward (True or a dict of its options);
        * ``channels_last``: train with NHWC weights and input batches
          (:mod:`~wsss_core.pipeline.memory_format`);
        * ``sync_bn``, ``find_unused_parameters`` (None: the class's
          :attr:`find_unused_parameters`): distributed runs, :meth:`runner_cfg`;
        * ``nonfinite_loss``: the non-finite loss guard's mode
          (:mod:`~wsss_core.pipeline.loss_guard`; None: stop);
        * ``pretrained_from``: a :class:`~wsss_core.pipeline.pretrain.Pretrain` stage whose
          backbone weights the model starts from: the stage sets ``pretrained=<its cached
          file>`` on the model config's entry ``pretrained_key`` (a dotted path, default
          ``backbone``), the option every backbone that loads local weights reads
          (:meth:`with_pretrained_backbone`).
        """
        from .memory_format import check_channels_last
        from .mixed_precision import check_amp
        super().__init__(name, amp=amp, amp_dtype=amp_dtype, compile=compile,
                         channels_last=channels_last, sync_bn=sync_bn,
                         find_unused_parameters=find_unused_parameters,
                         nonfinite_loss=nonfinite_loss, pretrained_from=pretrained_from,
                         pretrained_key=pretrained_key, **options)
        check_amp(name, amp, amp_dtype)
        check_channels_last(name, channels_last)
        self.check_training_options()

    def is_training(self) -> bool:
        return True

    def with_pretrained_backbone(self, ctx: StageContext, model_cfg: dict) -> dict:
        """``model_cfg`` with ``pretrained=<file>`` (or the option the backbone class names,
        :func:`~wsss_core.models.weights.pretrained_option`) set on its entry ``pretrained_key`` when
        the option ``pretrained_from`` names a Pretrain stage (a copy; unchanged otherwise).

        The entry's ``type`` must be the pretrained backbone's; its other options may differ
        where the weights still fit (e.g. ``out_indices``): the backbone's loader refuses a
        tensor of another shape, naming it."""
        source = self.options.get('pretrained_from')
        if not source:
            return model_cfg
        weights = self.read_input(ctx, 'pretrained_from')
        cfg = copy.deepcopy(model_cfg)
        entry = self.pretrained_entry(cfg)
        self.check_pretrained_type(weights.backbone_cfg, entry)
        from ..models.weights import pretrained_option
        from ..registry import MODELS, lookup
        entry[pretrained_option(lookup(MODELS, entry['type']))] = str(weights.weights)
        ctx.logger.info(f'[{self.name}] backbone starts from {weights.weights} '
                        f'(pretrained by {source!r})')
        return cfg

    def pretrained_entry(self, model_cfg: dict) -> dict:
        """The dict at the dotted path ``pretrained_key`` of ``model_cfg`` (the backbone that
        ``pretrained_from``'s weights go to); a :class:`StageError` names the missing part."""
        entry = model_cfg
        for part in self.options['pretrained_key'].split('.'):
            if not isinstance(entry, dict) or not isinstance(entry.get(part), dict):
                raise StageError(f"[{self.name}] pretrained_key="
                                 f"'{self.options['pretrained_key']}': the model config has no "
                                 f'dict at {part!r} to set pretrained= on')
            entry = entry[part]
        return entry

    def check_pretrained_type(self, pretrained_cfg: dict, entry: dict) -> None:
        """Refuse weights pretrained for another backbone type than the entry's."""
        if entry.get('type') != pretrained_cfg.get('type'):
            raise StageError(f"[{self.name}] pretrained_from='{self.options['pretrained_from']}' "
                             f"pretrained a {pretrained_cfg.get('type')}, but this model's "
                             f"{self.options['pretrained_key']} is a {entry.get('type')}: "
                             'point pretrained_from= at a Pretrain stage of that backbone')

    def check_sources(self, by_name: Dict[str, Any]) -> None:
        """When the pipeline is built (:func:`~wsss_core.pipeline.artifacts.check_graph`):
        the stage ``pretrained_from`` names pretrains the backbone type found at
        ``pretrained_key`` of this stage's ``model`` option, so a mis-wired config fails before
        any stage runs, not after the earlier stages' hours."""
        source = by_name.get(self.options.get('pretrained_from') or '')
        model = self.options.get('model')
        pretrained_cfg = getattr(source, 'backbone_config', None)
        if source is None or not isinstance(model, dict) or not isinstance(pretrained_cfg, dict):
            return
        self.check_pretrained_type(pretrained_cfg, self.pretrained_entry(model))

    def check_training_options(self) -> None:
        """Refuse a bad ``sync_bn``, ``find_unused_parameters``, ``nonfinite_loss`` or
        ``compile`` when the stage is built, before any earlier stage runs."""
        from .loss_guard import MODES
        self._flag_option('sync_bn')
        self._flag_option('find_unused_parameters', self.find_unused_parameters)
        mode = self.options.get('nonfinite_loss')
        if mode is not None and mode not in MODES:
            raise StageError(f'[{self.name}] nonfinite_loss must be one of {MODES}, got {mode!r}')
        self.compile_options()

    def hash_payload(self, ctx: StageContext) -> Dict[str, Any]:
        payload = super().hash_payload(ctx)
        payload['seed'] = ctx.seed
        return payload

    def build_model(self, ctx: StageContext, model_cfg: dict):
        """Build the model with every RNG seeded from the run's seed first, so that the
        initial weights (not only the data order) are the same for the same seed.

        With the stage option ``compile``, the model's ``forward`` (the loss computation in
        training) is wrapped in ``torch.compile``; the optimiser step and the hooks stay eager
        (compiling mmengine's whole ``train_step`` breaks the graph at the backward and the
        optimiser step: measured twice as slow on CPU, bench/compile_step.py)."""
        from mmengine.runner import set_random_seed

        from ..registry import MODELS, build
        from .memory_format import to_channels_last
        set_random_seed(ctx.seed if ctx.seed is not None else 0)
        model = build(model_cfg, MODELS)
        if self.options.get('channels_last'):
            model = to_channels_last(model, self.name, training_on=ctx.device)
        options = self.compile_options()
        if options is not None:
            import torch
            model.forward = torch.compile(model.forward, **options)
            ctx.logger.info(f'[{self.name}] model forward compiled (torch.compile {options}); '
                            'the first iterations are slow')
        return model

    def optim_wrapper_for_device(self, ctx: StageContext, optim_wrapper: dict) -> dict:
        """The ``optim_wrapper`` config with the stage's ``amp`` option applied on this run's
        device (see :mod:`~wsss_core.pipeline.mixed_precision`)."""
        from .mixed_precision import mixed_precision_optim_wrapper
        return mixed_precision_optim_wrapper(self.name, optim_wrapper,
                                             self.options.get('amp', False), ctx.device,
                                             self.options.get('amp_dtype'))

    def runner_cfg(self, ctx: StageContext) -> dict:
        """The ``cfg`` handed to the mmengine Runner.

        * distributed runs: the DDP wrapper (:func:`~wsss_core.compat.model_wrapper_cfg`),
          with ``find_unused_parameters`` from the stage option of that name (default: the
          stage class's :attr:`find_unused_parameters`);
        * ``sync_bn=True`` (stage option, off by default): in distributed runs on CUDA every
          BatchNorm becomes ``torch.nn.SyncBatchNorm`` (mmengine's ``sync_bn='torch'``, before
          DDP wraps the model), so the batch statistics cover the batches of all ranks.  torch
          has no SyncBatchNorm forward on CPU: there the run keeps plain BatchNorm (each rank
          normalises with its own batch) and says so in a warning.
        (``compile`` and ``channels_last`` are applied to the model in :meth:`build_model`.)
        """
        from .. import compat
        cfg = {}
        sync_bn = self._flag_option('sync_bn')
        find_unused = self._flag_option('find_unused_parameters', self.find_unused_parameters)
        if ctx.launcher != 'none':
            cfg['model_wrapper_cfg'] = compat.model_wrapper_cfg(find_unused)
            if sync_bn and str(ctx.device).startswith('cuda'):
                cfg['sync_bn'] = 'torch'
            elif sync_bn:
                ctx.logger.warning(
                    f'[{self.name}] sync_bn=True: SyncBatchNorm needs a GPU (torch has no CPU '
                    f'forward for it), this run uses {ctx.device!r}: training with plain '
                    'BatchNorm, each rank normalising with the statistics of its own batch')
        return cfg

    def compile_options(self) -> Optional[dict]:
        """The stage option ``compile`` as ``torch.compile`` keyword arguments (None: off):
        True -> ``{}``, or a dict such as ``dict(backend='inductor', mode='max-autotune')``."""
        compile_cfg = self.options.get('compile')
        if not compile_cfg:
            return None
        if not isinstance(compile_cfg, (bool, dict)):
            raise StageError(f'[{self.name}] compile must be True or a dict of '
                             f'torch.compile options, got {compile_cfg!r}')
        return dict(compile_cfg) if isinstance(compile_cfg, dict) else {}

    def protected_runner_kwargs(self, ctx: StageContext, default_hooks: dict) -> dict:
        """The Runner arguments that keep a training stage's work safe, shared by every
        training stage: checkpoints written atomically, the non-finite loss guard (stage
        option ``nonfinite_loss``), the random generators saved in checkpoints so that
        ``--resume`` continues exactly, the seed per rank, and resume from the newest
        complete checkpoint (``last_checkpoint`` repaired if a kill left it broken); plus
        the console's training progress bar (:mod:`~wsss_core.pipeline.progress_hook`)
        unless ``--no-progress`` or ``-v``."""
        from .. import console
        from .exact_resume import atomic_checkpoints, repair_last_checkpoint, with_random_state
        from .loss_guard import with_loss_guard
        from .progress_hook import with_progress_bar
        hooks = dict(default_hooks)
        if isinstance(hooks.get('checkpoint'), dict):
            hooks['checkpoint'] = atomic_checkpoints(hooks['checkpoint'])
        custom = with_loss_guard(self.name, self.options.get('custom_hooks'),
                                 self.options.get('nonfinite_loss'))
        custom = with_progress_bar(with_random_state(custom), self.name,
                                   ctx.progress and console.progress_enabled()
                                   and not console.verbose())
        return dict(default_hooks=hooks, custom_hooks=custom,
                    randomness=self.runner_randomness(ctx),
                    resume=ctx.resume and repair_last_checkpoint(ctx.stage_dir) is not None)

    @staticmethod
    def runner_randomness(ctx: StageContext) -> dict:
        """The Runner's ``randomness``: the run's seed, offset by the rank in distributed runs
        (``diff_rank_seed``) so that the ranks draw different augmentations; the model is
        built before (:meth:`build_model`, same weights on every rank) and mmengine's sampler
        shares rank 0's seed, so the ranks still split one shuffled order.  Checkpoints hold
        every rank's generator states, so on ``--resume`` each rank continues its own draws
        (:class:`~wsss_core.pipeline.exact_resume.RandomStateHook`)."""
        return dict(seed=ctx.seed if ctx.seed is not None else 0,
                    diff_rank_seed=ctx.launcher != 'none')

    def _flag_option(self, key: str, default: bool = False) -> bool:
        """The boolean stage option ``key`` (``default`` when unset or None); a StageError
        otherwise."""
        value = self.options.get(key)
        value = default if value is None else value
        if not isinstance(value, bool):
            raise StageError(f'[{self.name}] {key} must be True or False, got {value!r}')
        return value

    def check_batch_size(self, model: dict, batch_size: int) -> None:
        """Refuse, when the stage is built, a ``batch_size`` the model cannot train on.

        The model class may declare ``min_train_batch_size`` (default 1) and, for the message,
        ``min_train_batch_reason``: e.g. 2 for DeepLab v3+, whose image-pooling BatchNorm
        sees one value per channel in a batch of one.  With ``sync_bn=True`` the ranks'
        batches are normalised together, so the check is left to the run.
        """
        from ..registry import MODELS, lookup
        kind = model.get('type')
        cls = lookup(MODELS, kind)
        needed = int(getattr(cls, 'min_train_batch_size', 1))
        if int(batch_size) >= needed or self.options.get('sync_bn'):
            return
        reason = getattr(cls, 'min_train_batch_reason', '')
        raise StageError(f'[{self.name}] {cls.__name__} cannot train on batches of '
                         f'{batch_size}: it needs at least {needed} images per batch'
                         f'{f" ({reason})" if reason else ""}; set batch_size={needed} or more '
                         '(or sync_bn=True in a distributed run on GPUs)')

    @staticmethod
    def check_types(model: dict, custom_hooks=()) -> None:
        """Raise UnknownComponentError now for an unknown model or hook type."""
        from ..registry import HOOKS, MODELS, lookup
        lookup(MODELS, model['type'])
        for hook in custom_hooks:
            lookup(HOOKS, hook['type'])

    def produced_kinds(self) -> tuple:
        """A trained model, plus what its hooks publish (e.g. OAA's accumulated maps)."""
        from .artifacts import TRAINED_MODEL
        return (TRAINED_MODEL,) + published_kinds(self.options.get('custom_hooks'))

    # ------------------------------------------------------------------ extension points
    def data_config(self, ctx: StageContext) -> dict:
        """The data config this stage reads: the run's, updated with the option ``data``."""
        cfg = ctx.data_cfg
        cfg.update(self.options.get('data') or {})
        return cfg

    def datasets(self, ctx: StageContext) -> Tuple[Any, Optional[Any]]:  # pragma: no cover
        """``(training set, validation set or None)``; the training set has ``num_classes``
        and ``class_names``."""
        raise NotImplementedError

    def model_cfg(self, num_classes: int) -> dict:  # pragma: no cover
        """The model config to build, given the training set's class count."""
        raise NotImplementedError

    def train_loop(self, train_set) -> TrainLoop:  # pragma: no cover
        """The loop: epochs (:class:`TrainClassifier`) or iterations (:class:`TrainSegmentor`)."""
        raise NotImplementedError

    def default_optim_wrapper(self) -> dict:  # pragma: no cover
        """The ``optim_wrapper`` when the option is not given."""
        raise NotImplementedError

    def default_schedule(self, lr: float, total_steps: int) -> list:  # pragma: no cover
        """The ``param_scheduler`` when the option is not given, over ``total_steps``."""
        raise NotImplementedError

    def default_hooks(self) -> dict:  # pragma: no cover
        """mmengine's ``default_hooks`` (logger, checkpoint, ...) before the option
        ``default_hooks`` updates them."""
        raise NotImplementedError

    def train_sampler(self) -> Optional[dict]:
        """The training sampler (None: mmengine's ``DefaultSampler``, shuffled): the option
        ``sampler`` when the stage has one."""
        return self.options.get('sampler')

    def dataloader(self, dataset, batch_size: int, shuffle: bool, sampler=None,
                   drop_last: bool = False) -> dict:
        """A dataloader config for ``dataset`` (``num_workers`` from the options)."""
        workers = self.options.get('num_workers', 0)
        cfg = dict(dataset=dataset, batch_size=batch_size, num_workers=workers,
                   persistent_workers=workers > 0,
                   sampler=sampler or dict(type='DefaultSampler', shuffle=shuffle),
                   collate_fn=dict(type='default_collate'))
        if drop_last:   # else mmengine's default
            cfg['drop_last'] = True
        return cfg

    def train_dataloader(self, train_set) -> dict:
        """The training dataloader: shuffled, :meth:`train_sampler`, ``drop_last`` option."""
        return self.dataloader(train_set, self.options['batch_size'], True, self.train_sampler(),
                               drop_last=bool(self.options.get('drop_last')))

    def validation(self, val_set) -> dict:
        """The Runner's validation arguments for ``val_set`` (default: image-level mAP)."""
        return dict(val_dataloader=self.dataloader(val_set, self.options['batch_size'], False),
                    val_evaluator=dict(type='MultiLabelMAP'), val_cfg=dict())

    def record(self, ctx: StageContext, runner, net, train_set, val_set,
               model_cfg: dict) -> dict:  # pragma: no cover
        """The stage's record (metrics, counts, artifacts) after training."""
        raise NotImplementedError

    def model_artifacts(self, runner, train_set, model_cfg: dict, split: str) -> dict:
        """The record's artifacts: the trained model (weights + ``model_cfg``) and what the
        runner's hooks publish (of ``split``)."""
        from .artifacts import TRAINED_MODEL, merged_records
        model = TRAINED_MODEL.record(WEIGHTS, model_cfg, train_set.num_classes,
                                     train_set.class_names)
        return merged_records(model, *published_records(runner, split, train_set))

    # ------------------------------------------------------------------ the one Runner
    def build_runner(self, ctx: StageContext, model, train_set, val_set=None):
        """The mmengine Runner of this stage (see the module docstring, step 3)."""
        from mmengine.runner import Runner

        from ..visualization.tensorboard import default_visualizer
        o = self.options
        loop = self.train_loop(train_set)
        optim = self.optim_wrapper_for_device(ctx, o.get('optim_wrapper')
                                              or self.default_optim_wrapper())
        sched = o.get('param_scheduler') or self.default_schedule(optim['optimizer']['lr'],
                                                                  loop.steps)
        hooks = self.default_hooks()
        hooks.update(o.get('default_hooks') or {})
        kwargs = dict(
            model=model, work_dir=str(ctx.stage_dir),
            experiment_name=f'{self.name}-{next(_RUNNER_IDS)}',  # unique mmengine instances
            train_dataloader=self.train_dataloader(train_set), train_cfg=loop.train_cfg,
            optim_wrapper=optim, param_scheduler=sched,
            launcher=ctx.launcher, default_scope='wsss_core',
            env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
            log_processor=dict(by_epoch=loop.by_epoch), visualizer=default_visualizer(),
            **self.protected_runner_kwargs(ctx, hooks))
        runner_cfg = self.runner_cfg(ctx)
        if runner_cfg:
            kwargs['cfg'] = runner_cfg
        if val_set is not None:
            kwargs.update(self.validation(val_set))
        return Runner(**kwargs)

    def run(self, ctx: StageContext) -> dict:
        """Train (see the module docstring) and return the record."""
        import torch
        from mmengine.dist import is_main_process

        from .. import compat
        from ..io import atomic_write
        train_set, val_set = self.datasets(ctx)
        model_cfg = self.model_cfg(train_set.num_classes)
        model = self.build_model(ctx, self.with_pretrained_backbone(ctx, model_cfg))
        runner = self.build_runner(ctx, model, train_set, val_set)
        with compat.allow_mmengine_checkpoints():
            runner.train()
        net = runner.model.module if hasattr(runner.model, 'module') else runner.model
        if is_main_process():   # one writer: the ranks' BN statistics may differ
            with atomic_write(Path(ctx.stage_dir) / WEIGHTS) as fh:
                torch.save(net.state_dict(), fh)
        return self.record(ctx, runner, net, train_set, val_set, model_cfg)
