"""GETAM's joint-phase losses (``docs/methods/getam.md#26-losses``), registered in MODELS: split
cross-entropy, saliency BCE, gated dense-CRF energy (with its PyTorch bilateral filters in
:mod:`.bilateral`)."""
from .dense_energy import DenseEnergyLoss
from .saliency_loss import SaliencyLoss
from .split_ce import SplitCrossEntropyLoss

__all__ = ['DenseEnergyLoss', 'SaliencyLoss', 'SplitCrossEntropyLoss']
