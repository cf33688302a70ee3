"""The Stage interface and the context a stage runs in.

A stage is built from its config dict (``type``, ``name`` and its own options) out of the
STAGES registry.  It declares what it reads (:attr:`Stage.reads`: input option -> artifact
kind) and produces (:attr:`Stage.produces`), see :mod:`~wsss_core.pipeline.artifacts`, and
:meth:`Stage.run` does the work inside ``ctx.stage_dir`` and returns the manifest record
(``metrics``, ``counts``, ``artifacts``).  The :class:`~wsss_core.pipeline.pipeline.Pipeline`
handles hashing, skipping, resuming and the manifest; a plugin adds a stage by registering
a subclass, without touching the core.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from ..config_errors import UNEXPECTED, ConfigBuildError
from ..declared_parameters import HASH_VERSION, declaration_of, retired_hint
from .manifest import read_manifest


class StageError(RuntimeError):
    """A stage cannot run (missing input stage, bad option); the message says what to do."""


def registered_stage_name(cls: type) -> str:
    """The name ``cls`` is registered under in STAGES (its class name when not registered)."""
    from ..registry import STAGES
    for key, value in STAGES.module_dict.items():
        if value is cls:
            return key
    return cls.__name__


@dataclass
class StageContext:
    """What a running stage may use: the config, directories, earlier manifests, flags."""
    cfg: Any                                   # the merged mmengine Config
    work_dir: Path
    stage_dir: Path
    resume: bool = False
    launcher: str = 'none'
    device: str = 'cpu'
    progress: bool = True
    seed: Optional[int] = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger('wsss'))

    @property
    def data_cfg(self) -> dict:
        data = self.cfg.get('data')
        if data is None:
            raise StageError("the config has no 'data' entry (the dataset every stage reads)")
        return data.to_dict() if hasattr(data, 'to_dict') else dict(data)

    def stage_path(self, name: str) -> Path:
        return self.work_dir / name

    def manifest_of(self, name: str) -> dict:
        """The manifest of a finished earlier stage, or a :class:`StageError` naming it.

        The stage's files are verified against the manifest's checksums first (once per
        process, :func:`~wsss_core.pipeline.checksums.verify_stage`): a missing or changed
        file raises :class:`~wsss_core.pipeline.checksums.CorruptArtifactError` naming it.
        """
        manifest = read_manifest(self.stage_path(name))
        if manifest is None:
            raise StageError(f"stage '{name}' has not finished in {self.work_dir}: run it first "
                             f'(without --stages, or with --stages {name})')
        from .checksums import verify_stage
        verify_stage(self.stage_path(name), manifest, name)
        return manifest


class Stage:
    """Base class of pipeline stages.

    A stage declares its parameters in its constructor (:mod:`~wsss_core.declared_parameters`)
    and hands them to this one, which stores them in :attr:`options`; an option that no
    constructor of the stage declares is refused here, naming the closest declared ones.

    Args:
        name: the stage's name, also its directory under the work dir.
        **options: the stage's declared options, as its constructor normalised them; their
            canonical form is hashed to decide whether a finished run still holds.
    """

    #: this ``**options`` stores what the subclasses' constructors declared: the declaration
    #: of a stage ends here and is closed (:func:`~wsss_core.declared_parameters.declaration_of`)
    stores_declared_options = True
    #: options the stage no longer takes -> the hint its refusal gives (e.g. ``recipe``)
    retired_options: Mapping[str, str] = {}

    #: what the stage reads: input option -> the artifact kind (or a tuple of kinds) that
    #: the stage(s) it names must produce (:mod:`~wsss_core.pipeline.artifacts`); an
    #: option's value is a stage name, a list of names or a dict of them
    reads: Mapping[str, Any] = {}
    #: the artifact kinds the stage's record holds (:meth:`produced_kinds` may add to them)
    produces: tuple = ()

    #: the metrics shown in the end-of-run table (:mod:`~wsss_core.pipeline.summary`), in
    #: order: keys of the ``metrics`` the stage returns, each a key or a ``(key, label)``
    #: pair; keys the stage did not write are left out.  A stage with other metrics (e.g.
    #: WSOL's box accuracies) declares its own.
    headline_metrics: tuple = ('miou', 'oracle_miou', 'precision', 'recall', 'cls/mAP')

    def __init__(self, name: str, **options):
        if not name or '/' in name or name.startswith('.'):
            raise StageError(f'invalid stage name {name!r}: use a plain directory name')
        declaration = declaration_of(type(self))
        unknown = declaration.unknown(options)
        if unknown:
            raise ConfigBuildError(registered_stage_name(type(self)), UNEXPECTED, unknown,
                                   registry='stage',
                                   accepted=[p for p in declaration.parameters if p != 'name'],
                                   hint=retired_hint(type(self), unknown))
        self.name = name
        self.options = options

    def input_names(self, option: str) -> List[str]:
        """The stage names the input option ``option`` holds (a name, a list or a dict of
        names; None: none)."""
        value = self.options.get(option)
        if isinstance(value, str):
            return [value]
        if isinstance(value, Mapping):
            value = list(value.values())
        if isinstance(value, (list, tuple)):
            return [v for v in value if isinstance(v, str)]
        return []

    def inputs(self) -> List[str]:
        """Names of the earlier stages this stage reads, each once, in option order."""
        out: List[str] = []
        for option in self.reads:
            out.extend(n for n in self.input_names(option) if n not in out)
        return out

    def produced_kinds(self) -> tuple:
        """The artifact kinds this stage produces (:attr:`produces`; a stage whose output
        depends on its options, e.g. on its hooks, overrides this)."""
        return tuple(self.produces)

    def read_input(self, ctx: StageContext, option: str, stage: Optional[str] = None):
        """The artifact that the input option ``option`` names, read and validated by its
        kind (:mod:`~wsss_core.pipeline.artifacts`): of the stage ``stage`` (default: the
        option's value, a single name).  With several accepted kinds, the first one the
        stage recorded is read."""
        from .artifacts import accepted_kinds
        stage = stage if stage is not None else self.options.get(option)
        kinds = accepted_kinds(self.reads[option])
        if len(kinds) > 1:
            artifacts = ctx.manifest_of(stage).get('artifacts') or {}
            kinds = tuple(k for k in kinds if k.present_in(artifacts)) or kinds
        return kinds[0].read(ctx, stage, self.name, option)

    def hash_payload(self, ctx: StageContext) -> Dict[str, Any]:
        """What the config hash covers: the hash version, the stage's registered name, the
        canonical form of its options (those that differ from their declared defaults,
        :meth:`~wsss_core.declared_parameters.Declaration.canonical`) and the data config."""
        return dict(hash_version=HASH_VERSION, type=registered_stage_name(type(self)),
                    options=self.hashed_options(), data=ctx.data_cfg)

    def hashed_options(self) -> Dict[str, Any]:
        """The canonical form of the options: those whose values differ from their declared
        defaults (what the config hash covers)."""
        return declaration_of(type(self)).canonical(self.options)

    def is_training(self) -> bool:
        """Training stages resume from checkpoints only with ``--resume``."""
        return False

    def run(self, ctx: StageContext) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


class TrainingStage(Stage):
    """Base of stages that train with an mmengine Runner.

    They resume from checkpoints only with ``--resume``, their hash covers the run's seed,
    and the model and hook types are checked when the stage is built (before any work).
    """

    #: DDP's ``find_unused_parameters`` for this stage's model (the stage option of that name
    #: overrides it): True for a model that leaves parameters without gradient in some steps
    find_unused_parameters: bool = False

    def __init__(self, name: str, amp=False, amp_dtype: Optional[str] = None, compile=False,
                 channels_last: bool = False, sync_bn: bool = False,
                 find_unused_parameters: Optional[bool] = None,
                 nonfinite_loss: Optional[str] = None, **options):
        """The options every training stage shares, parsed and checked in this one place:

        * ``amp`` / ``amp_dtype``: mixed precision (False, True or 'auto': on CUDA only),
          :mod:`~wsss_core.pipeline.mixed_precision`;
        * ``compile``: ``torch.compile`` the model's forward (True or a dict of its options);
        * ``channels_last``: train with NHWC weights and input batches
          (:mod:`~wsss_core.pipeline.memory_format`);
        * ``sync_bn``, ``find_unused_parameters`` (None: the class's
          :attr:`find_unused_parameters`): distributed runs, :meth:`runner_cfg`;
        * ``nonfinite_loss``: the non-finite loss guard's mode
          (:mod:`~wsss_core.pipeline.loss_guard`; None: stop).
        """
        from .memory_format import check_channels_last
        from .mixed_precision import check_amp
        super().__init__(name, amp=amp, amp_dtype=amp_dtype, compile=compile,
                         channels_last=channels_last, sync_bn=sync_bn,
                         find_unused_parameters=find_unused_parameters,
                         nonfinite_loss=nonfinite_loss, **options)
        check_amp(name, amp, amp_dtype)
        check_channels_last(name, channels_last)
        self.check_training_options()

    def is_training(self) -> bool:
        return True

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
            model = to_channels_last(model, self.name)
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
        cls = kind if isinstance(kind, type) else lookup(MODELS, kind)
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
