"""Typed artifacts: what one stage hands another, written and read in one place each.

A stage's manifest holds an ``artifacts`` record.  The parts of it that later stages read
are *artifact kinds*; each kind has one writer (:meth:`ArtifactKind.record`, the entries a
stage returns in its record's ``artifacts``) and one reader (:meth:`ArtifactKind.read`,
which validates the manifest once, with one error message, and returns a typed value):

==================  =====================================================  ==============
kind                what it is                                             read as
==================  =====================================================  ==============
``CAM_SET``         a folder of ``<id>.npz`` CAMs at image size            :class:`FolderArtifact`
``FEATURE_CAMS``    a folder of ``<id>.npz`` maps at CAM (feature) size,   :class:`FolderArtifact`
                    e.g. OAA's accumulated attention
``LABEL_SET``       a folder of ``<id>.png`` pseudo labels (255 ignore)    :class:`FolderArtifact`
``PREDICTIONS``     a folder of ``<id>.png`` segmentation predictions      :class:`FolderArtifact`
``TRAINED_MODEL``   weights plus the model config that rebuilds them       :class:`TrainedModel`
``PRETRAINED``      a backbone's weights under its own parameter names,    :class:`PretrainedBackbone`
                    in the shared cache (``Pretrain``), for ``pretrained=``
==================  =====================================================  ==============

A folder kind records ``{<key>: <folder>, 'split', 'num_classes', 'class_names'}`` (its
``key`` is ``cams``, ``accumulated``, ``labels`` or ``predictions``); a trained model
records ``{'weights', 'model', 'num_classes', 'class_names'}``; pretrained backbone weights
record ``{'backbone_weights' (an absolute path: the file lives in the cache, shared by work
dirs), 'backbone', 'sha256'}``, and the reader checks the file against its digest; each writer also adds its
kind's name to ``artifacts['kinds']``.  A reader accepts a manifest written before the kinds
were recorded when it has the kind's entries.

Every stage declares what it reads and produces (:attr:`~wsss_core.pipeline.stage.Stage.reads`,
:meth:`~wsss_core.pipeline.stage.Stage.produced_kinds`), and the pipeline checks the whole
graph when it is built (:func:`check_graph`): ``RefineLabels(cams='train')`` pointed at a
training stage is refused before any work, naming both stages.  A hook that writes files a
later stage reads publishes them through its stage: its class declares ``publishes`` (a
kind) and ``published_artifacts(runner)`` (the kind's record), and the training stage adds
both to its own declaration and record.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .stage import StageError

__all__ = ['ArtifactKind', 'FolderKind', 'ModelKind', 'FolderArtifact', 'TrainedModel',
           'PretrainedBackbone', 'BackboneWeightsKind', 'CAM_SET', 'FEATURE_CAMS', 'LABEL_SET',
           'PREDICTIONS', 'TRAINED_MODEL', 'PRETRAINED', 'KINDS',
           'accepted_kinds', 'check_graph', 'describe']

KINDS_KEY = 'kinds'


class ArtifactKind:
    """One kind of artifact: its ``name`` (recorded in the manifest) and ``title`` (in
    messages, e.g. 'a CAM set (a folder of <id>.npz CAMs at image size)')."""

    #: the manifest ``artifacts`` entries a record of this kind must hold
    required: Tuple[str, ...] = ()

    def __init__(self, name: str, title: str):
        self.name = name
        self.title = title

    def __repr__(self) -> str:
        return f'<artifact kind {self.name}>'

    def present_in(self, artifacts: Mapping) -> bool:
        """Whether a manifest's ``artifacts`` hold this kind (recorded, or all its entries
        present in a manifest written before kinds were recorded)."""
        kinds = artifacts.get(KINDS_KEY)
        if kinds is not None:
            return self.name in kinds
        return all(k in artifacts for k in self.required)

    def _tagged(self, entries: dict, num_classes: Optional[int] = None,
                class_names: Optional[Sequence[str]] = None) -> dict:
        """``entries`` with the class count / names (when known) and this kind listed."""
        if num_classes is not None:
            entries['num_classes'] = int(num_classes)
        if class_names is not None:
            entries['class_names'] = list(class_names)
        entries[KINDS_KEY] = [self.name]
        return entries

    def read(self, ctx, stage: str, reader: str, option: str):
        """The artifact of this kind that finished stage ``stage`` recorded, validated;
        a :class:`StageError` naming ``reader`` and its ``option`` otherwise."""
        manifest = ctx.manifest_of(stage)
        artifacts = manifest.get('artifacts') or {}
        missing = [k for k in self.required if k not in artifacts]
        if missing or not self.present_in(artifacts):
            raise StageError(
                f"[{reader}] {option}='{stage}': stage '{stage}' did not record {self.title} "
                f"(its manifest's artifacts lack {missing or [self.name]}); point {option}= "
                f'at a stage that produces {self.title}, or redo {stage!r} '
                f'(wsss-run CONFIG --stages {stage})')
        return self._value(ctx, stage, manifest, artifacts)

    def _value(self, ctx, stage: str, manifest: dict, artifacts: dict):  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class FolderArtifact:
    """A folder of per-image files of one split, from stage ``stage``.

    ``path(img_id)`` is the file of one image (``<folder>/<img_id><suffix>``)."""
    kind: 'FolderKind'
    stage: str
    folder: Path
    split: str
    num_classes: Optional[int] = None
    class_names: Optional[List[str]] = None

    def path(self, img_id: str) -> Path:
        return self.folder / f'{img_id}{self.kind.suffix}'


class FolderKind(ArtifactKind):
    """A folder of ``<id><suffix>`` files of one split: ``key`` names the folder entry."""

    def __init__(self, name: str, title: str, key: str, suffix: str):
        super().__init__(name, title)
        self.key = key
        self.suffix = suffix
        self.required = (key, 'split')

    def record(self, folder: str, split: str, dataset=None, num_classes: Optional[int] = None,
               class_names: Optional[Sequence[str]] = None) -> dict:
        """The manifest entries of this artifact: ``folder`` (relative to the stage dir),
        its ``split`` and the class count / names (from ``dataset`` unless given)."""
        if dataset is not None:
            num_classes = dataset.num_classes if num_classes is None else num_classes
            class_names = dataset.class_names if class_names is None else class_names
        return self._tagged({self.key: str(folder), 'split': split}, num_classes, class_names)

    def _value(self, ctx, stage, manifest, artifacts) -> FolderArtifact:
        return FolderArtifact(self, stage, ctx.stage_path(stage) / artifacts[self.key],
                              artifacts['split'], artifacts.get('num_classes'),
                              artifacts.get('class_names'))


@dataclass(frozen=True)
class TrainedModel:
    """The network a training stage ``stage`` trained: ``model_cfg`` rebuilds it and
    ``weights`` holds its state dict; ``manifest`` is the stage's whole manifest."""
    stage: str
    weights: Path
    model_cfg: dict
    num_classes: Optional[int]
    class_names: Optional[List[str]]
    manifest: dict = field(repr=False, default_factory=dict)

    def load(self, device: str = 'cpu'):
        """Rebuild the model from its config, load the weights, move it to ``device`` and
        switch it to eval mode."""
        import torch

        from ..registry import MODELS, build
        model = build(copy.deepcopy(self.model_cfg), MODELS)
        state = torch.load(self.weights, map_location='cpu', weights_only=True)
        model.load_state_dict(state)
        return model.to(device).eval()


class ModelKind(ArtifactKind):
    """Trained weights plus the model config that rebuilds the network."""

    required = ('weights', 'model')

    def record(self, weights: str, model: dict, num_classes: Optional[int] = None,
               class_names: Optional[Sequence[str]] = None) -> dict:
        """The manifest entries: the ``weights`` file (relative to the stage dir), the
        ``model`` config that rebuilds the network, and the class count / names."""
        return self._tagged(dict(weights=str(weights), model=model), num_classes, class_names)

    def _value(self, ctx, stage, manifest, artifacts) -> TrainedModel:
        return TrainedModel(stage, ctx.stage_path(stage) / artifacts['weights'],
                            dict(artifacts['model']), artifacts.get('num_classes'),
                            artifacts.get('class_names'), manifest)


@dataclass(frozen=True)
class PretrainedBackbone:
    """Backbone weights that stage ``stage`` pretrained: ``weights`` (a state dict under the
    backbone's own parameter names, in the shared cache) and the ``backbone_cfg`` they fit."""
    stage: str
    weights: Path
    backbone_cfg: dict


class BackboneWeightsKind(ArtifactKind):
    """A backbone's weight file outside the work dir (the shared cache), with its digest."""

    required = ('backbone_weights', 'backbone', 'sha256')

    def record(self, weights, backbone: dict, sha256: str) -> dict:
        """The manifest entries: the weight file's absolute path, the ``backbone`` config
        the weights fit and the file's SHA-256."""
        return self._tagged(dict(backbone_weights=str(Path(weights).resolve()),
                                 backbone=backbone, sha256=sha256))

    def _value(self, ctx, stage, manifest, artifacts) -> PretrainedBackbone:
        from .checksums import file_digest
        path = Path(artifacts['backbone_weights'])
        redo = f'rerun it: wsss-run CONFIG --stages {stage}'
        if not path.is_file():
            raise StageError(f"stage '{stage}' recorded pretrained weights at {path}, which "
                             f'no longer exists (the cache was cleared?): {redo}')
        if file_digest(path) != artifacts['sha256']:
            raise StageError(f"the pretrained weights of stage '{stage}' at {path} changed "
                             f'since the stage recorded them (SHA-256 differs): delete the '
                             f'file and {redo}')
        return PretrainedBackbone(stage, path, dict(artifacts['backbone']))


CAM_SET = FolderKind('cam_set', 'a CAM set (a folder of <id>.npz CAMs at image size)',
                     'cams', '.npz')
FEATURE_CAMS = FolderKind('feature_cams', 'a set of maps at CAM resolution (a folder of '
                          '<id>.npz, e.g. accumulated attention)', 'accumulated', '.npz')
LABEL_SET = FolderKind('label_set', 'a label set (a folder of <id>.png pseudo labels)',
                       'labels', '.png')
PREDICTIONS = FolderKind('predictions', 'a prediction set (a folder of <id>.png '
                         'segmentation predictions)', 'predictions', '.png')
TRAINED_MODEL = ModelKind('trained_model', 'a trained model (weights and the model config)')
PRETRAINED = BackboneWeightsKind('pretrained_backbone', 'pretrained backbone weights (a '
                                 'Pretrain stage)')

#: every kind by name
KINDS: Dict[str, ArtifactKind] = {k.name: k for k in (CAM_SET, FEATURE_CAMS, LABEL_SET,
                                                      PREDICTIONS, TRAINED_MODEL, PRETRAINED)}

KindSpec = Union[ArtifactKind, Tuple[ArtifactKind, ...]]


def accepted_kinds(spec: KindSpec) -> Tuple[ArtifactKind, ...]:
    """A ``reads`` entry as a tuple of the kinds it accepts."""
    return tuple(spec) if isinstance(spec, (tuple, list)) else (spec,)


def describe(kinds: Iterable[ArtifactKind]) -> str:
    """'a CAM set (...) or a label set (...)'; 'no artifact a stage reads' for none."""
    titles = [k.title for k in kinds]
    return ' or '.join(titles) if titles else 'no artifact a stage reads'


def merged_records(*records: dict) -> dict:
    """Manifest ``artifacts`` made of several kinds' records: their entries, and the kinds
    listed once each in order (a later record's other entries win)."""
    out: dict = {}
    kinds: List[str] = []
    for rec in records:
        for name in rec.get(KINDS_KEY, ()):
            if name not in kinds:
                kinds.append(name)
        out.update({k: v for k, v in rec.items() if k != KINDS_KEY})
    if kinds:
        out[KINDS_KEY] = kinds
    return out


def check_graph(stages: Sequence) -> None:
    """Refuse, before any work, a stage whose input option names a stage that does not
    produce the kind the option reads: ``RefineLabels(cams='train')`` on a TrainClassifier
    raises a :class:`StageError` naming both stages, what was expected and what the named
    stage produces, and the stages of the config that would fit.  Then each stage's own
    ``check_sources(by_name)``, where it has one, checks what its inputs' stages are
    configured to make (e.g. a training stage's ``pretrained_from`` backbone type)."""
    by_name = {s.name: s for s in stages}
    for stage in stages:
        for option, spec in stage.reads.items():
            wanted = accepted_kinds(spec)
            for dep in stage.input_names(option):
                source = by_name.get(dep)
                if source is None:   # the pipeline names an unknown input itself
                    continue
                made = source.produced_kinds()
                if any(kind in made for kind in wanted):
                    continue
                fitting = [s.name for s in stages if s is not stage
                           and any(k in s.produced_kinds() for k in wanted)]
                hint = (f"; stages of this config that do: {fitting}" if fitting
                        else '; no stage of this config does')
                raise StageError(
                    f"stage '{stage.name}' ({type(stage).__name__}) reads {option}='{dep}' "
                    f"as {describe(wanted)}, but stage '{dep}' ({type(source).__name__}) "
                    f'produces {describe(made)}: point {option}= at a stage that produces '
                    f'{describe(wanted)}{hint}')
    for stage in stages:      # then each stage's own checks of what its inputs name
        check_sources = getattr(stage, 'check_sources', None)
        if check_sources is not None:
            check_sources(by_name)
