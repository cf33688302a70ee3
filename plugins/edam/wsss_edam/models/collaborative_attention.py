"""Collaborative Multi-Attention (CMA) of EDAM (Wu et al., CVPR 2021;
``docs/methods/edam.md#5-collaborative-multi-attention``).

Training-only module: for every class k it attends jointly over the tokens of the two images
of a pair with the class-k Transformer encoder, then scores each image for class k.  With F
the backbone features of a pair (2, D, h, w) and Mhat the DA masks (see
:mod:`.discriminative_activation`):

    G       = W_r * F                                   1x1 conv D -> d (128), no bias
    A_k     = G * Mhat_k                                mask broadcast over the d channels
    T_k     = Dropout( tokens(A_k) + PE + SEG[i] )      (2, h w, d); i = 0 / 1 for image 1 / 2
    Z_k     = Enc_k( [T_k[0]; T_k[1]] )                 one sequence of 2 h w tokens
    s[i, k] = w_k . mean_tokens(Z_k[image i])           bias-free class-k 1x1 conv d -> 1

``tokens`` flattens the map row-major (token p = y w + x).  PE is the fixed sinusoidal table
over a single image's positions p in [0, h w) (both images use the same positions):

    PE[p, 2i] = sin(p * exp(-2i ln(10000) / d)),   PE[p, 2i + 1] = cos(p * exp(-2i ln(10000) / d))

built lazily for the feature size at hand (the reference hard-wires 46 x 46 = 368 px crops).
SEG is a learned table of 5 rows (only rows 0 and 1 are used).  Enc_k is one pre-norm
encoder layer (BERT style), 2 heads, d_k = d / 2, FFN 4d with the tanh GELU, dropout 0.1:

    x = x + Dropout( MHA(LN1(x)) ),   MHA = W_o softmax(Q K^T / sqrt(d_k)) V  (+ biases),
    x = x + Dropout( W_2 Dropout(GELU(W_1 LN2(x) + b_1)) + b_2 ),   out = Dropout(x)
    LN(x) = a (x - mean(x)) / (std(x) + 1e-6) + b,   std unbiased (divides by d - 1)

Batching.  The K encoders are independent (no parameter sharing) but have the same shapes,
so their parameters are kept stacked along a leading class dimension (K, ...) and all
classes run at once: linear layers are one ``baddbmm`` over the class dimension, and the
attention runs on a (K * P, heads, 2 h w, d_k) batch (classes x pairs), so any number P of
pairs is processed in one call, every (class, pair) sequence attending only to itself.
Mathematically this is K independent encoders applied to P independent pairs.

Attention kernels: ``attention='sdpa'`` uses
:func:`torch.nn.functional.scaled_dot_product_attention` (fused flash / memory-efficient
kernels that never store the (2hw)^2 attention matrix when one applies), ``'explicit'`` the
textbook ``softmax(Q K^T / sqrt(d_k)) V`` with dropout on the probabilities.  Note: PyTorch's
CPU fused kernel has no attention dropout, so with ``attn_dropout > 0`` in training on CPU
SDPA falls back to its math kernel (no memory saving); CUDA kernels support dropout.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['sinusoidal_table', 'StackedLinear', 'StackedLayerNorm', 'PerClassEncoderLayers',
           'PerClassHeads', 'CollaborativeMultiAttention', 'ATTENTION_KINDS']

ATTENTION_KINDS = ('sdpa', 'explicit')


def sinusoidal_table(length: int, dim: int, dtype: torch.dtype = torch.float32,
                     device=None) -> torch.Tensor:
    """The fixed positional table (length, dim): ``PE[p, 2i] = sin(p exp(-2i ln(1e4) / dim))``,
    ``PE[p, 2i + 1] = cos(same)`` (computed in float64, returned in ``dtype``)."""
    if dim % 2:
        raise ValueError(f'the positional table needs an even dimension, got {dim}')
    pos = torch.arange(int(length), dtype=torch.float64).unsqueeze(1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)
    angle = pos * torch.exp(-two_i * math.log(10000.0) / dim)
    table = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(1)
    return table.to(device=device, dtype=dtype)


class StackedLinear(nn.Module):
    """``num`` independent linear layers ``y_c = x_c W_c^T + b_c`` run as one ``baddbmm``.

    ``weight`` (num, out, in), ``bias`` (num, out); input (num, M, in) -> (num, M, out).
    Init: Xavier-uniform per layer; ``fused`` > 1 means the layer is ``fused`` linears of
    ``out / fused`` outputs side by side (e.g. Q, K, V), each initialised with its own fans.
    Biases: PyTorch's ``nn.Linear`` default, U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(self, num: int, in_features: int, out_features: int, fused: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(num, out_features))
        bound = math.sqrt(6.0 / (in_features + out_features // fused))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -1 / math.sqrt(in_features), 1 / math.sqrt(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class StackedLayerNorm(nn.Module):
    """``num`` BERT-pytorch layer norms ``a_c (x - mean) / (std + eps) + b_c``, std UNBIASED.

    ``weight`` = a (num, dim) ones, ``bias`` = b (num, dim) zeros; input (num, M, dim).
    (Not ``nn.LayerNorm``: that one divides by ``sqrt(biased var + eps)``.)
    """

    def __init__(self, num: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(num, dim))
        self.bias = nn.Parameter(torch.zeros(num, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True, unbiased=True)
        return self.weight.unsqueeze(1) * (x - mean) / (std + self.eps) + self.bias.unsqueeze(1)


class PerClassEncoderLayers(nn.Module):
    """K independent single-layer pre-norm Transformer encoders, run batched.

    Parameters (names under ``encoders.``): ``norm1``, ``qkv`` (Q, K, V fused), ``proj``
    (attention output), ``norm2``, ``fc1``, ``fc2``; each stacked over the K classes.

    ``forward(x, pairs)``: ``x`` (K, P * L, d), the K classes' token sequences of P pairs
    (sequence p is rows ``p L .. (p + 1) L - 1``); returns the same shape.
    """

    def __init__(self, num_classes: int, embed_dims: int = 128, num_heads: int = 2,
                 ffn_dims: int = 512, dropout: float = 0.1, attn_dropout: float = 0.1,
                 attention: str = 'sdpa', eps: float = 1e-6):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not a multiple of num_heads {num_heads}')
        k, d = int(num_classes), int(embed_dims)
        self.num_heads = int(num_heads)
        self.attn_dropout = float(attn_dropout)
        self.attention = attention
        self.norm1 = StackedLayerNorm(k, d, eps)
        self.qkv = StackedLinear(k, d, 3 * d, fused=3)
        self.proj = StackedLinear(k, d, d)
        self.norm2 = StackedLayerNorm(k, d, eps)
        self.fc1 = StackedLinear(k, d, int(ffn_dims))
        self.fc2 = StackedLinear(k, int(ffn_dims), d)
        self.dropout = nn.Dropout(dropout)

    @property
    def attention(self) -> str:
        return self._attention

    @attention.setter
    def attention(self, kind: str) -> None:
        if kind not in ATTENTION_KINDS:
            raise ValueError(f'attention must be one of {ATTENTION_KINDS}, not {kind!r}')
        self._attention = kind

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T / sqrt(d_k))`` (dropout p = ``attn_dropout`` in training) ``v``."""
        p = self.attn_dropout if self.training else 0.0
        if self._attention == 'sdpa':
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        probs = scores.softmax(dim=-1)
        return torch.matmul(F.dropout(probs, p, self.training), v)

    def self_attention(self, x: torch.Tensor, pairs: int) -> torch.Tensor:
        num, rows, d = x.shape
        length, heads = rows // pairs, self.num_heads
        qkv = self.qkv(x).view(num * pairs, length, 3, heads, d // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (K * P, heads, L, d_k)
        out = self.attend(q, k, v).transpose(1, 2).reshape(num, rows, d)
        return self.proj(out)

    def forward(self, x: torch.Tensor, pairs: int) -> torch.Tensor:
        if x.shape[1] % pairs:
            raise ValueError(f'{x.shape[1]} tokens cannot be split into {pairs} sequences')
        x = x + self.dropout(self.self_attention(self.norm1(x), pairs))
        hidden = self.dropout(F.gelu(self.fc1(self.norm2(x)), approximate='tanh'))
        x = x + self.dropout(self.fc2(hidden))
        return self.dropout(x)


class PerClassHeads(nn.Module):
    """K bias-free 1x1 convs d -> 1 on pooled features: ``s[n, k] = w_k . z[k, n]``.

    ``weight`` (K, d), Xavier-uniform with the fans of a (1, d, 1, 1) conv.
    """

    def __init__(self, num_classes: int, embed_dims: int = 128):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dims))
        bound = math.sqrt(6.0 / (embed_dims + 1))
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """``pooled`` (K, N, d) -> logits (N, K)."""
        return torch.einsum('knd,kd->nk', pooled, self.weight)


class CollaborativeMultiAttention(nn.Module):
    """The CMA module: features + class masks of P pairs -> one logit per image and class.

    Args:
        in_channels: D, channels of the backbone features.
        num_classes: K, one encoder and one head per class.
        embed_dims / num_heads / ffn_dims: d = 128, 2 heads, FFN 512 (reference).
        dropout: token-input, residual and FFN dropout (0.1).
        attn_dropout: dropout on the attention probabilities (default: ``dropout``).
        attention: ``'sdpa'`` (fused kernels) or ``'explicit'`` (see the module docstring).
        segment_rows: rows of the learned segment table (5 in the reference; 0 and 1 used).

    Parameter names: ``reduce.weight``, ``heads.weight`` (new convs, x10 lr in EDAM) and
    ``segment_embedding.weight``, ``encoders.*`` (the Transformer part, x1 lr).

    ``forward(feat, masks)``: ``feat`` (2P, D, h, w), ``masks`` (2P, K, h, w) the class
    channels of the DA masks, images 2p and 2p + 1 forming pair p -> logits (2P, K).
    """

    def __init__(self, in_channels: int, num_classes: int, embed_dims: int = 128,
                 num_heads: int = 2, ffn_dims: int = 512, dropout: float = 0.1,
                 attn_dropout: Optional[float] = None, attention: str = 'sdpa',
                 segment_rows: int = 5, eps: float = 1e-6):
        super().__init__()
        self.num_classes, self.embed_dims = int(num_classes), int(embed_dims)
        self.reduce = nn.Conv2d(int(in_channels), self.embed_dims, 1, bias=False)
        nn.init.xavier_uniform_(self.reduce.weight)
        self.segment_embedding = nn.Embedding(int(segment_rows), self.embed_dims)
        nn.init.xavier_uniform_(self.segment_embedding.weight)
        self.input_dropout = nn.Dropout(dropout)
        self.encoders = PerClassEncoderLayers(
            self.num_classes, self.embed_dims, num_heads, ffn_dims, dropout,
            dropout if attn_dropout is None else attn_dropout, attention, eps)
        self.heads = PerClassHeads(self.num_classes, self.embed_dims)
        self.register_buffer('pe', sinusoidal_table(0, self.embed_dims), persistent=False)

    @property
    def attention(self) -> str:
        return self.encoders.attention

    @attention.setter
    def attention(self, kind: str) -> None:
        self.encoders.attention = kind

    def positional_table(self, length: int) -> torch.Tensor:
        """The first ``length`` rows of PE (the buffer grows on demand, never shrinks)."""
        if self.pe.shape[0] < length:
            self.pe = sinusoidal_table(length, self.embed_dims, self.pe.dtype, self.pe.device)
        return self.pe[:length]

    def tokens(self, feat: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Encoder inputs (K, 2P, h w, d): ``tokens(G * Mhat_k) + PE + SEG[n mod 2]``."""
        n, k = masks.shape[:2]
        g = self.reduce(feat).flatten(2).transpose(1, 2)  # (2P, hw, d)
        a = masks.flatten(2).transpose(0, 1).unsqueeze(-1) * g  # (K, 2P, hw, d)
        image_in_pair = torch.arange(n, device=feat.device) % 2
        seg = self.segment_embedding(image_in_pair).unsqueeze(1)  # (2P, 1, d)
        return self.input_dropout(a + self.positional_table(g.shape[1]) + seg)

    def forward(self, feat: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        n, k, h, w = masks.shape
        if n % 2 or n == 0:
            raise ValueError(f'the CMA needs image pairs (an even, non-zero batch), got {n}')
        if k != self.num_classes or feat.shape[0] != n or feat.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f'features {tuple(feat.shape)} and masks {tuple(masks.shape)} do '
                             f'not match ({self.num_classes} classes expected)')
        x = self.tokens(feat, masks)  # (K, 2P, hw, d)
        out = self.encoders(x.reshape(k, n * h * w, -1), pairs=n // 2)
        pooled = out.view(k, n, h * w, -1).mean(dim=2)  # (K, 2P, d), GAP per image
        return self.heads(pooled)
