"""Pretrain: train a backbone on the ShapeCorpus, the offline stand-in for ImageNet pretraining.

Every published WSSS method starts from an ImageNet-pretrained backbone; offline, the
:class:`~wsss_core.datasets.shape_corpus_dataset.ShapeCorpus` (single-label, about 100
classes that are not SyntheticShapes' classes) plays that part.  ``Pretrain`` is the epoch
preset of the one trainer (:class:`~wsss_core.pipeline.train_classifier.TrainClassifier`)
with:

* the model :class:`~wsss_core.models.pretrain_classifier.PretrainClassifier`: the
  ``backbone`` config, global pooling, a linear head, softmax cross-entropy (label smoothing
  ``label_smoothing``);
* the data ``corpus`` (a dataset config, default ``dict(type='ShapeCorpus')``, the type filled
  in when missing) instead of the run's data: pretraining never sees the downstream images;
* validation by top-1 / top-5 accuracy on the corpus's ``val`` split
  (:class:`~wsss_core.evaluation.classification.SingleLabelAccuracy`).

**The shared cache.**  The result is the backbone's state dict in the names its own loader
reads (``backbone.`` stripped; :func:`~wsss_core.models.weights.pretrained_state_dict`), written to ``<cache>/pretrained/<Type>-<key>.pth`` with a
``.json`` record beside it (``<cache>`` = ``$WSSS_CACHE`` or ``~/.cache/wsss``), where
``<key>`` is the SHA-256 (first 16 hex digits) of the stage's hash payload: the hash version,
the registered name, the canonical options (backbone, corpus, recipe: what differs from the
declared defaults) and the seed -- not the run's data and not the stage's name.  Every work
dir whose Pretrain stage has the same payload reuses the file without training; a changed
recipe makes a new one.  The stage records the file as a
:data:`~wsss_core.pipeline.artifacts.PRETRAINED` artifact (absolute path and SHA-256), which
a training stage reads through its option ``pretrained_from`` and hands to its backbone as
``pretrained=`` (or the option the backbone class names, :func:`~wsss_core.models.weights.pretrained_option`;
:meth:`~wsss_core.pipeline.training_stage.TrainingStage.with_pretrained_backbone`),
the same option every real-data config uses for ImageNet weights.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from ..config_errors import check_values
from ..registry import DATASETS, STAGES
from .artifacts import PRETRAINED, merged_records
from .stage import StageContext
from .train_classifier import TrainClassifier

#: the corpus a Pretrain stage trains on unless told otherwise
DEFAULT_CORPUS = dict(type='ShapeCorpus')
#: the cache folder of pretrained backbones, under $WSSS_CACHE
CACHE_FOLDER = 'pretrained'


def corpus_or_default(corpus: Optional[dict]) -> dict:
    """``corpus`` over :data:`DEFAULT_CORPUS`: a corpus without a ``type`` is a ShapeCorpus."""
    return {**DEFAULT_CORPUS, **(corpus or {})}


def pretrained_cache_dir() -> Path:
    """``<$WSSS_CACHE or ~/.cache/wsss>/pretrained``."""
    from ..datasets.synthetic_shapes_cache import default_cache_root
    return default_cache_root() / CACHE_FOLDER


def cache_key(payload: Dict[str, Any]) -> str:
    """The first 16 hex digits of the SHA-256 of ``payload`` as canonical JSON (sorted keys)."""
    blob = json.dumps(payload, sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@STAGES.register_module()
class Pretrain(TrainClassifier):
    """Pretrain ``backbone`` on ``corpus`` (single-label); cache its weights by content hash.

    Args:
        backbone: the backbone config (the one the downstream model names, e.g.
            ``dict(type='SmallResNet')``).
        corpus: the pretraining dataset config (default ShapeCorpus with its defaults).
        label_smoothing: of the cross-entropy.
        max_epochs, batch_size, pipeline, optim_wrapper, param_scheduler, ...: as
            :class:`~wsss_core.pipeline.train_classifier.TrainClassifier` (default AdamW
            2e-3 with a one-cycle schedule, flip + reflect-pad-8 crops).
    """

    #: pretrained backbone weights (the shared file; a run that trained also records the
    #: whole classifier, ``model.pth``, but a run that reused the cache has none)
    produces = (PRETRAINED,)
    headline_metrics = (('cls/top1', 'top-1'), ('cls/top5', 'top-5'))

    def __init__(self, name: str, backbone: dict, corpus: Optional[dict] = None,
                 label_smoothing: float = 0.1, max_epochs: int = 10, batch_size: int = 64,
                 log_interval: int = 50, pipeline: Optional[Sequence] = None, **options):
        model = dict(type='PretrainClassifier', backbone=dict(backbone),
                     label_smoothing=float(label_smoothing))
        # corpus knobs the generator refuses: now, not after the stages before this one
        check_values(corpus_or_default(corpus), DATASETS, 'stages', name, 'corpus')
        super().__init__(name, model=model, backbone=backbone, corpus=corpus,
                         label_smoothing=label_smoothing, max_epochs=max_epochs,
                         batch_size=batch_size, log_interval=log_interval, pipeline=pipeline,
                         **options)

    # ------------------------------------------------------------------ the preset
    @property
    def backbone_config(self) -> dict:
        """The backbone config this stage pretrains (read by the stages that start from it
        when the pipeline is built, :meth:`TrainingStage.check_sources`)."""
        return dict(self.options['backbone'])

    def produced_kinds(self) -> tuple:
        return tuple(self.produces)

    def hash_payload(self, ctx: StageContext) -> Dict[str, Any]:
        """The training stage's payload without the run's data (pretraining never reads
        it): the same backbone, corpus, recipe and seed hash alike in every work dir."""
        payload = super().hash_payload(ctx)
        payload.pop('data', None)
        return payload

    def data_config(self, ctx: StageContext) -> dict:
        """The ``corpus`` option over :data:`DEFAULT_CORPUS` (a corpus given without a
        ``type``, e.g. ``dict(generator=dict(image_size=64))``, is a ShapeCorpus), not the
        run's data."""
        return corpus_or_default(self.options.get('corpus'))

    def validation(self, val_set) -> dict:
        """Top-1 / top-5 accuracy on the corpus's validation split."""
        cfg = super().validation(val_set)
        cfg['val_evaluator'] = dict(type='SingleLabelAccuracy')
        return cfg

    def cache_paths(self, ctx: StageContext):
        """``(weights, record)``: the cache files of this stage's payload."""
        stem = f"{self.options['backbone']['type']}-{cache_key(self.hash_payload(ctx))}"
        folder = pretrained_cache_dir()
        return folder / f'{stem}.pth', folder / f'{stem}.json'

    # ------------------------------------------------------------------ run
    def run(self, ctx: StageContext) -> dict:
        """Reuse the cached weights of this payload when they exist; else train and cache."""
        weights, record_file = self.cache_paths(ctx)
        cached = self.cached_record(weights, record_file)
        if cached is not None:
            ctx.logger.info(f'[{self.name}] pretrained {self.options["backbone"]["type"]} '
                            f'found in the cache: {weights} (trained '
                            f"{cached.get('finished', '?')}); not training again")
            return dict(metrics=cached['metrics'], counts=cached['counts'],
                        artifacts=PRETRAINED.record(weights, self.options['backbone'],
                                                    cached['sha256']),
                        reused_cache=True)
        return super().run(ctx)

    @staticmethod
    def cached_record(weights: Path, record_file: Path) -> Optional[dict]:
        """The cache record when both files exist and the weights match its SHA-256."""
        from .checksums import file_digest
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            return None
        if not weights.is_file() or file_digest(weights) != record.get('sha256'):
            return None
        return record

    def record(self, ctx: StageContext, runner, net, train_set, val_set, model_cfg: dict) -> dict:
        """Write the backbone's weights to the cache (one process), then record them, the
        whole classifier (``model.pth``, for inspection) and the accuracy."""
        import torch
        from mmengine.dist import broadcast_object_list, is_main_process

        from ..io import atomic_write, write_json
        from ..models.weights import pretrained_state_dict
        from .checksums import file_digest
        out = super().record(ctx, runner, net, train_set, val_set, model_cfg)
        weights, record_file = self.cache_paths(ctx)
        digest = [None]
        if is_main_process():
            weights.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(weights) as fh:
                torch.save(pretrained_state_dict(net.backbone), fh)
            digest[0] = file_digest(weights)
            write_json(record_file, dict(
                backbone=self.options['backbone'], corpus=self.data_config(ctx),
                payload=self.hash_payload(ctx), sha256=digest[0], metrics=out['metrics'],
                counts=out['counts'], stage=self.name, work_dir=str(ctx.work_dir),
                finished=time.strftime('%Y-%m-%d %H:%M:%S')))
        broadcast_object_list(digest)
        out['artifacts'] = merged_records(
            PRETRAINED.record(weights, self.options['backbone'], digest[0]), out['artifacts'])
        return out
