"""How a model hands the maps of a training step to a hook: through the train step's outputs.

mmengine's train loop calls ``outputs = model.train_step(batch, optim_wrapper)`` and then
every hook's ``after_train_iter(runner, batch_idx, data_batch, outputs)``.  ``train_step``
(of :class:`~mmengine.model.BaseModel` and of mmengine's DDP wrapper alike) builds
``outputs`` as ``parse_losses(model(**batch, mode='loss'))[1]``: the log variables, which
mmengine's ``RuntimeInfoHook`` records one by one as scalars.  So a model that publishes
per-step maps (OAA's class attention for its accumulation hook):

1. adds one non-loss entry :data:`STEP_MAPS_KEY` to the dict its ``forward(mode='loss')``
   returns, a dict of *detached* tensors (for OAA ``cam`` (B, C, h, w) and ``logits`` (B, C));
2. inherits :class:`PublishesStepMaps`, whose ``parse_losses`` takes that entry out before
   mmengine sums and logs the losses, and returns the log variables as
   :class:`TrainStepOutputs`: the same items (so nothing new is logged, and the loss is the
   same sum in the same order) plus the maps in the attribute ``step_maps``;
3. the hook reads them with :func:`step_maps_of` (``outputs``, never a model attribute).

Nothing is kept on the model between steps, so a stale step can never be read twice.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Optional, Tuple

__all__ = ['STEP_MAPS_KEY', 'TrainStepOutputs', 'PublishesStepMaps', 'step_maps_of']

#: the entry of ``forward(mode='loss')``'s dict that holds the step's maps (not a loss)
STEP_MAPS_KEY = 'step_maps'


class TrainStepOutputs(OrderedDict):
    """A train step's log variables (items: scalars for the logger) and, in the attribute
    :attr:`step_maps`, the step's maps (a dict of detached tensors, or None).

    The maps are an attribute, not an item, because mmengine records every item of a train
    step's outputs as a scalar (``RuntimeInfoHook.after_train_iter``)."""

    def __init__(self, log_vars: Mapping = (), step_maps: Optional[dict] = None):
        super().__init__(log_vars)
        self.step_maps = step_maps


def step_maps_of(outputs) -> Optional[dict]:
    """The maps a model published in this train step's ``outputs`` (None when none)."""
    return getattr(outputs, 'step_maps', None)


class PublishesStepMaps:
    """Mixin for an mmengine ``BaseModel`` whose ``forward(mode='loss')`` adds the step's maps
    under :data:`STEP_MAPS_KEY`; put it before ``BaseModel`` in the bases.

    :attr:`step_map_keys` names the entries of the maps (the
    :class:`~wsss_core.models.protocols.StepMapsModel` contract)."""

    #: the keys of the published maps dict (e.g. ``('cam', 'logits')``)
    step_map_keys: Tuple[str, ...] = ()

    def parse_losses(self, losses):
        """mmengine's ``parse_losses`` on the losses without the maps entry; the log variables
        come back as :class:`TrainStepOutputs` carrying the maps."""
        losses = dict(losses)
        maps = losses.pop(STEP_MAPS_KEY, None)
        loss, log_vars = super().parse_losses(losses)
        return loss, TrainStepOutputs(log_vars, maps)
