"""Frozen batch normalisation: BatchNorm with fixed statistics and affine terms.

DeepLab v2 as trained by deeplab-pytorch (``docs/methods/deeplab.md#45-optimisation``) keeps every
BatchNorm layer in eval mode for the whole run and leaves its affine parameters out of the
optimiser: with batches of 5 crops the batch statistics would be too noisy.  A frozen layer
is the fixed per-channel affine map

    y = (x - mu) / sqrt(sigma^2 + eps) * gamma + beta  =  x * s + b,
    s = gamma / sqrt(sigma^2 + eps),   b = beta - mu * s

with ``mu, sigma^2, gamma, beta`` stored as *buffers*: they are saved and loaded with the
state dict under BatchNorm's names (``weight``, ``bias``, ``running_mean``,
``running_var``), never change in ``train()`` mode and are not parameters, so no optimiser
can see them.  :func:`freeze_batch_norm` converts every ``nn.BatchNorm2d`` of a module.
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ['FrozenBatchNorm2d', 'freeze_batch_norm']


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with frozen statistics and affine terms (see the module docstring).

    Args:
        num_features: channels C.
        eps: the variance epsilon (deeplab-pytorch: 1e-5).
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.register_buffer('weight', torch.ones(num_features))
        self.register_buffer('bias', torch.zeros(num_features))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # A BatchNorm2d state dict also holds the step counter: not needed here.
        state_dict.pop(prefix + 'num_batches_tracked', None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def scale_shift(self):
        """``(s, b)`` of ``y = x * s + b``, each of shape (C,)."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift()
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)

    @classmethod
    def from_batch_norm(cls, bn: nn.modules.batchnorm._BatchNorm) -> 'FrozenBatchNorm2d':
        """A frozen copy of ``bn`` (its running statistics and, if affine, gamma and beta)."""
        frozen = cls(bn.num_features, bn.eps)
        with torch.no_grad():
            if bn.affine:
                frozen.weight.copy_(bn.weight)
                frozen.bias.copy_(bn.bias)
            if bn.track_running_stats and bn.running_mean is not None:
                frozen.running_mean.copy_(bn.running_mean)
                frozen.running_var.copy_(bn.running_var)
        return frozen.to(bn.weight.device if bn.affine else frozen.weight.device)

    def extra_repr(self) -> str:
        return f'{self.num_features}, eps={self.eps}'


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` (and SyncBatchNorm) in ``module`` by a frozen copy.

    Returns the module (a new :class:`FrozenBatchNorm2d` if ``module`` itself is a BatchNorm).
    """
    if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
        return FrozenBatchNorm2d.from_batch_norm(module)
    for name, child in module.named_children():
        new = freeze_batch_norm(child)
        if new is not child:
            setattr(module, name, new)
    return module
