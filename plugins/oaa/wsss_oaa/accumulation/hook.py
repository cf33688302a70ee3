"""OAAAccumulationHook: online attention accumulation during classifier training
(Jiang et al., ICCV 2019, §3.2; ``docs/methods/oaa.md#24-online-accumulation``, NSROM's filter in
``docs/methods/nsrom.md#33-classifier-training-and-accumulation``, OAA-drop in
``docs/methods/oaa.md#25-attention-drop``).

After every training step, for each image ``i`` of the batch and each ground-truth class c::

    a = relu(A_c) / (max relu(A_c) + 1e-8)       A = the step's class attention maps
    store[i, c] = max(store[i, c], a)            if c passes the filter (epoch >= start_epoch)
    store[i, c] = a                              first visit in the last epoch of a missing key

(the exact rule and its multi-process form: :mod:`wsss_oaa.accumulation.store`).  A is
read from the train step's outputs (``outputs.step_maps['cam']`` and ``['logits']``, published
by a :class:`~wsss_core.models.protocols.StepMapsModel` such as ``OAAClassifier``).  The key
is the image id from the batch, so shuffling and several ranks are fine.  The filter is
OAA's top-k rule (``filter='topk'``) and/or NSROM's ``score_filter=0.1``
(skip a class whose sigmoid score is below it).  ``drop=dict(prob, threshold)`` turns on
attention drop (:mod:`wsss_oaa.attention_drop`): before each step a ``drop_mask`` built from
the latest accepted maps is added to the batch, and the model applies it.

The store lives in memory and travels in the mmengine checkpoint (``checkpoint['oaa_store']``),
so ``--resume`` continues it exactly.  With several ranks the stores are gathered and merged
at the end of every epoch (before the checkpoint hook saves) and at the end of training.
At the end of training the main process writes ``<work_dir>/accumulated/<img_id>.npz``
(core CAM format, maps in [0, 1] at CAM resolution) and ``accumulated/summary.json``.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from wsss_core.io import write_json
from wsss_core.pipeline.artifacts import FEATURE_CAMS
from wsss_core.models.protocols import StepMapsModel, require_model
from wsss_core.models.step_maps import step_maps_of
from wsss_core.registry import HOOKS

from ..attention_drop import batch_drop_mask, drop_config
from .store import AttentionStore, max_normalise, score_accepts, topk_accepts

#: folder under the training stage's work dir with the exported maps
ACCUMULATED_DIR = 'accumulated'
#: checkpoint entry holding the store
CHECKPOINT_KEY = 'oaa_store'


@HOOKS.register_module()
class OAAAccumulationHook(Hook):
    """Accumulate each image's class attention over training epochs (see the module docstring).

    Args:
        start_epoch: first epoch (0-based) that writes; the reference skips epoch 0.
        filter: ``'topk'`` (OAA) or None (every ground-truth class is accepted).
        fill_last_epoch: in the last epoch write the map of a key that has none yet.
        quantize: keep 8-bit values as the reference's PNG files do; the attention drop then
            also resizes the 8-bit maps as the reference does (OpenCV on uint8).
        score_filter: also skip a class whose sigmoid score is below this (NSROM: 0.1).
        drop: attention drop, ``dict(prob=0.5, threshold=0.6)`` (or True for these), None off.
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW): the store is merged before saving
    #: the artifact it publishes through its training stage: the accumulated maps, a CAM
    #: set at CAM resolution (``<stage>/accumulated/<id>.npz``) that ExportAttention and
    #: TrainIntegralAttention read (:mod:`wsss_core.pipeline.artifacts`)
    publishes = FEATURE_CAMS

    def __init__(self, start_epoch: int = 1, filter: Optional[str] = 'topk',
                 fill_last_epoch: bool = True, quantize: bool = False,
                 score_filter: Optional[float] = None, drop=None):
        if filter not in ('topk', None):
            raise ValueError(f"OAAAccumulationHook: filter must be 'topk' or None, not {filter!r}")
        if int(start_epoch) < 0:
            raise ValueError(f'OAAAccumulationHook: start_epoch must be >= 0, got {start_epoch}')
        self.start_epoch = int(start_epoch)
        self.filter = filter
        self.fill_last_epoch = bool(fill_last_epoch)
        self.quantize = bool(quantize)
        self.score_filter = None if score_filter is None else float(score_filter)
        self.drop = drop_config(drop)
        self.store = AttentionStore(quantize=self.quantize, keep_current=self.drop is not None)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def accepts(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, C) bool: the classes whose maps this step may accumulate."""
        ok = labels > 0
        if self.filter == 'topk':
            ok &= topk_accepts(logits, labels)
        if self.score_filter is not None:
            ok &= score_accepts(logits, self.score_filter)
        return ok

    #: the maps this hook reads from the train step's outputs
    STEP_MAPS = ('cam', 'logits')

    def _step_maps(self, runner, outputs, batch_size: int) -> dict:
        step = step_maps_of(outputs)
        if not isinstance(step, dict) or any(k not in step for k in self.STEP_MAPS):
            raise RuntimeError(
                f'OAAAccumulationHook reads the step maps {self.STEP_MAPS} from the train '
                f"step's outputs (outputs.step_maps, see wsss_core.models.step_maps), like "
                f'OAAClassifier publishes them; {type(self._model(runner)).__name__} did not '
                'publish them in this iteration')
        if step['cam'].shape[0] != batch_size:
            raise RuntimeError(f"OAAAccumulationHook: the step maps hold "
                               f"{step['cam'].shape[0]} images, the batch {batch_size}")
        return step

    # ------------------------------------------------------------------ training
    def before_train(self, runner) -> None:
        self.store.rank = get_rank()
        require_model(runner.model, StepMapsModel, 'OAAAccumulationHook', needs=self.STEP_MAPS)
        if self.start_epoch >= runner.max_epochs:
            raise ValueError(f'OAAAccumulationHook(start_epoch={self.start_epoch}) with '
                             f'max_epochs={runner.max_epochs}: no epoch would be accumulated '
                             '(epochs are 0-based; the reference starts at 1)')
        if self.drop is not None:
            params = inspect.signature(self._model(runner).forward).parameters
            if 'drop_mask' not in params:
                raise TypeError(f'OAAAccumulationHook(drop=...) needs a model whose forward '
                                f'takes drop_mask (e.g. OAAClassifier), not '
                                f'{type(self._model(runner)).__name__}')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.drop is None or data_batch is None:
            return
        img = data_batch['img']
        size = tuple(img.shape[-2:]) if isinstance(img, torch.Tensor) else tuple(img[0].shape[-2:])
        data_batch['drop_mask'] = batch_drop_mask(
            data_batch['img_id'], data_batch['labels'], self.store.current_map, size,
            epoch=runner.epoch, seed=runner.seed or 0, reference_rounding=self.quantize,
            **self.drop)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        epoch = runner.epoch
        if epoch < self.start_epoch:
            return
        img_ids = list(data_batch['img_id'])
        labels = torch.as_tensor(data_batch['labels']).detach().cpu()
        step = self._step_maps(runner, outputs, len(img_ids))
        logits = step['logits'].detach().float().cpu()
        accepted = self.accepts(logits, labels)
        gt = torch.nonzero(labels > 0).tolist()
        if not gt:
            return
        bs, cs = zip(*gt)
        maps = max_normalise(step['cam'][list(bs), list(cs)]).cpu().numpy()
        last = self.fill_last_epoch and epoch == runner.max_epochs - 1
        for (b, c), amap in zip(gt, maps):
            self.store.visit((img_ids[b], c), amap, bool(accepted[b, c]), epoch, last=last)

    def after_train_epoch(self, runner) -> None:
        self._sync()

    def after_train(self, runner) -> None:
        self._sync()
        if is_main_process():
            self.export(Path(runner.work_dir) / ACCUMULATED_DIR, runner)

    # ------------------------------------------------------------------ ranks, checkpoints
    def _sync(self) -> None:
        """Gather every rank's store and merge them (rank order) on every rank."""
        if get_world_size() <= 1:
            return
        states = all_gather_object(self.store.state_dict())
        merged = AttentionStore.merged([AttentionStore.from_state_dict(s) for s in states],
                                       rank=get_rank())
        merged.keep_current = self.store.keep_current
        self.store = merged

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self.store.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', True):
            return  # load_from (weights only): a fresh run starts an empty store
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            runner.logger.warning('OAAAccumulationHook: the checkpoint holds no attention '
                                  'store; accumulation restarts empty')
            return
        self.store.load_state_dict(state)
        self.store.rank = get_rank()

    # ------------------------------------------------------------------ export
    def published_artifacts(self, runner, split: str, dataset) -> dict:
        """The accumulated maps as the training stage's artifact (:attr:`publishes`): the
        folder :data:`ACCUMULATED_DIR` of the training ``split`` of ``dataset``."""
        return FEATURE_CAMS.record(ACCUMULATED_DIR, split, dataset)

    def export(self, out_dir: Path, runner=None) -> dict:
        """Write the final maps and ``summary.json`` to ``out_dir``; return the summary."""
        images = self.store.save_maps(out_dir)
        summary = dict(
            images=images, maps=len(self.store), from_fill=self.store.from_fill(),
            accepted_per_epoch={str(e): n for e, n in self.store.accepted_per_epoch().items()},
            epochs_accumulated=sorted(self.store.accepted_per_epoch()),
            max_epochs=getattr(runner, 'max_epochs', None), start_epoch=self.start_epoch,
            filter=self.filter, score_filter=self.score_filter,
            fill_last_epoch=self.fill_last_epoch, quantize=self.quantize, drop=self.drop,
            format='core CAM npz: class_ids + float16 maps in [0, 1] at CAM resolution')
        write_json(Path(out_dir) / 'summary.json', summary)
        return summary
