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
