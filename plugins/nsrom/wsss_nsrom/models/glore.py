"""The graph-based global reasoning unit, GloRe (Chen et al., CVPR 2019;
``docs/methods/nsrom.md#32-classifier-with-the-glore-head``).

NSROM puts one GloRe unit into its classifier head (and into the OA-CAM model) so that every
position can exchange information with every other one through a small fully connected
graph.  Per image, with X the input (C, h, w) flattened to (C, L), L = h w positions:

    X_s = W_s X + b_s                      state projection, 1x1 conv C -> S    (S, L)
    B   = W_b X + b_b                      node projection,  1x1 conv C -> N    (N, L)
    V   = X_s B^T                          node features                        (S, N)
          (times 1/L when ``normalize``; the reference does not normalise)
    H   = V + V A^T + 1 a^T                node-axis 1x1 Conv1d (A: N x N, bias a) on V^T,
                                           added back to V (the graph step (I + A) V)
    Z   = W_g ReLU(H)                      state-axis 1x1 Conv1d (W_g: S x S, no bias)
    Y   = Z B                              reverse projection with the same B   (S, L)
    X'  = X + BN(W_e Y)                    1x1 conv S -> C (no bias), BatchNorm2d(eps 1e-4),
                                           residual                             (C, h, w)

The paper writes the graph convolution as Z = ((I - A_g) V) W_g on node-major V (N x S);
the sign of the learned adjacency is immaterial, so the implementation (and the reference)
uses I + A with a bias and a ReLU between the two axes, exactly as above.

Every step is a per-position linear map, a sum over positions or a per-channel BatchNorm,
so the unit is equivariant to permutations of the L positions.  With
``zero_init_residual=True`` the last BN's scale starts at 0 and the unit is the identity.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['GraphConv', 'GloReUnit']


class GraphConv(nn.Module):
    """The GCN of GloRe on node features V (B, S, N): ``Z = W_g ReLU(V + V A^T + a)``.

    ``node_conv`` (Conv1d N -> N, bias) mixes nodes (the learned adjacency A, bias a), applied
    to V^T so that its channels are the N nodes; ``state_conv`` (Conv1d S -> S, no bias)
    mixes states (W_g).  Both keep PyTorch's default init, as in the reference.
    """

    def __init__(self, num_states: int, num_nodes: int):
        super().__init__()
        self.node_conv = nn.Conv1d(num_nodes, num_nodes, 1)
        self.state_conv = nn.Conv1d(num_states, num_states, 1, bias=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = v + self.node_conv(v.transpose(1, 2)).transpose(1, 2)
        return self.state_conv(F.relu(h))


class GloReUnit(nn.Module):
    """Global reasoning unit on (B, C, h, w) features, output of the same shape.

    Args:
        in_channels: C (512 in NSROM).
        num_nodes: N graph nodes (64).
        num_states: S node-feature states (default 2 N = 128).
        bn_eps: eps of the final BatchNorm2d (1e-4, as the reference).
        normalize: scale V by 1/(h w) (off in the reference).
        zero_init_residual: start the final BN's scale at 0, so the unit is the identity.
    """

    def __init__(self, in_channels: int = 512, num_nodes: int = 64,
                 num_states: Optional[int] = None, bn_eps: float = 1e-4,
                 normalize: bool = False, zero_init_residual: bool = False):
        super().__init__()
        self.num_nodes = int(num_nodes)
        self.num_states = int(num_states) if num_states is not None else 2 * self.num_nodes
        self.normalize = bool(normalize)
        self.zero_init_residual = bool(zero_init_residual)
        self.conv_state = nn.Conv2d(in_channels, self.num_states, 1)
        self.conv_proj = nn.Conv2d(in_channels, self.num_nodes, 1)
        self.gcn = GraphConv(self.num_states, self.num_nodes)
        self.conv_extend = nn.Conv2d(self.num_states, in_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(in_channels, eps=bn_eps)
        self.reset_residual()

    def reset_residual(self) -> None:
        """Zero the final BN's scale when ``zero_init_residual`` (call after re-initialising)."""
        if self.zero_init_residual:
            nn.init.zeros_(self.bn.weight)

    def project(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(V, B)``: node features V = X_s B^T (B, S, N) and the projection B (B, N, L)."""
        x_s = self.conv_state(x).flatten(2)
        proj = self.conv_proj(x).flatten(2)
        v = torch.bmm(x_s, proj.transpose(1, 2))
        if self.normalize:
            v = v * (1.0 / x_s.shape[-1])
        return v, proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v, proj = self.project(x)
        z = self.gcn(v)
        y = torch.bmm(z, proj).reshape(x.shape[0], self.num_states, *x.shape[-2:])
        return x + self.bn(self.conv_extend(y))
