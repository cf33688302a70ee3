"""The GETAM map (Sun et al., "GETAM: Gradient-weighted Element-wise Transformer Attention Map
for Weakly-supervised Semantic Segmentation", arXiv 2112.02841;
``docs/methods/getam.md#24-the-getam-map``).

For image b and a class c of its label, with y = the raw class logit (no sigmoid),
A_l (heads, N, N) block l's post-softmax attention and G_l = dy / dA_l:

    S   = sum_{l = start}^{L-1}  mean_h ReLU(G_l * A_l)  *  mean_h ReLU(G_l)          (N, N)
    M_c = up( ReLU( S[0, P:] ).reshape(H/16, W/16) )                                  (H, W)

row 0 is the class token as query, the columns from P (P = 1 prefix token, 2 on DeiT-distilled)
are the patch tokens, ``up`` is bilinear with align_corners=True, and there is no
normalisation.  Maps of classes outside the label are zeros.

Two implementations, same output:

* :func:`getam_maps_reference`: the reference's procedure literally, one ``backward`` of
  ``logit[b, c]`` per (image, class) through the whole batch graph, parameter gradients
  zeroed first, ``retain_graph``, the gradients read from tensor hooks on the attentions;
* :func:`getam_maps` / :func:`getam_maps_from_logits`: ``torch.autograd.grad`` with respect to
  the attentions of blocks start..L-1 only (no parameter gradient, no backward through the
  first blocks or the hybrid's ResNet), and the (image, class) pairs grouped: the images of a
  ViT are independent, so one backward of ``sum_b logit[b, c_b]`` gives every image b the
  gradient of its own ``logit[b, c_b]``; round j takes the j-th label of every image that has
  one, so a batch needs max_b |labels_b| backward passes instead of sum_b |labels_b|.  With
  ``grads_batched=True`` the rounds run as one vmapped backward (``is_grads_batched``).
  This assumes no coupling between the images of a batch on the way to the logits (no
  BatchNorm in training mode there; GETAM's ViT and class head have none).

Only the class-token row of S is needed, and every operation in S is element-wise, so both
compute that row alone.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from wsss_core.cams.base import BaseCAMGenerator
from wsss_core.cams.gradient import autograd_on
from wsss_core.registry import CAM_GENERATORS

__all__ = ['GETAMCAM', 'getam_maps', 'getam_maps_from_logits', 'getam_maps_reference',
           'getam_maps_reference_from_logits', 'getam_class_row', 'readout_class_token_row',
           'positive_classes', 'fit_to_multiple', 'upsample_maps']

Labels = Union[torch.Tensor, Sequence[Sequence[int]], None]


def positive_classes(labels: Labels, batch: int, num_classes: int) -> List[List[int]]:
    """Per image, its label's class indices: from a (B, C) multi-hot tensor (nonzero =
    positive), a list of class-index lists, or None (every class)."""
    if labels is None:
        return [list(range(num_classes)) for _ in range(batch)]
    if torch.is_tensor(labels):
        if labels.shape != (batch, num_classes):
            raise ValueError(f'labels of shape {tuple(labels.shape)} for logits of shape '
                             f'({batch}, {num_classes}): pass a (B, C) multi-hot tensor')
        return [row.nonzero().flatten().tolist() for row in labels.detach().cpu()]
    labels = [list(map(int, ids)) for ids in labels]
    if len(labels) != batch:
        raise ValueError(f'labels has {len(labels)} entries for a batch of {batch} images')
    bad = [c for ids in labels for c in ids if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f'class indices {bad} outside 0..{num_classes - 1}')
    return labels


def getam_class_row(attentions: Sequence[torch.Tensor],
                    grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """The class-token row of the GETAM layer sum (``docs/methods/getam.md`` §2.4, steps 3-4):

        S[0, :] = sum_l mean_h ReLU(G_l[:, 0, :] * A_l[:, 0, :]) * mean_h ReLU(G_l[:, 0, :])

    ``attentions[l]``, ``grads[l]``: (..., heads, N, N); returns (..., N) in float32.
    """
    row = None
    for attn, grad in zip(attentions, grads):
        a = attn[..., 0, :].detach().float()
        g = grad[..., 0, :].float()
        term = F.relu(g * a).mean(dim=-2) * F.relu(g).mean(dim=-2)
        row = term if row is None else row + term
    return row


def readout_class_token_row(row: torch.Tensor, num_prefix_tokens: int,
                            grid: Tuple[int, int]) -> torch.Tensor:
    """``ReLU(S[0, P:])`` laid out on the token grid: (..., N) -> (..., h, w)
    (``docs/methods/getam.md`` §2.4, step 5)."""
    patches = F.relu(row[..., num_prefix_tokens:])
    if patches.shape[-1] != grid[0] * grid[1]:
        raise ValueError(f'{patches.shape[-1]} patch tokens for a {grid[0]}x{grid[1]} grid '
                         f'(N={row.shape[-1]}, prefix tokens={num_prefix_tokens})')
    return patches.reshape(patches.shape[:-1] + tuple(grid))


def upsample_maps(maps: torch.Tensor, size) -> torch.Tensor:
    """``docs/methods/getam.md`` §2.4, step 6: bilinear, align_corners=True, to the crop size."""
    return F.interpolate(maps, size=tuple(size), mode='bilinear', align_corners=True)


def _check_start(backbone, start_layer: int) -> range:
    if not 0 <= start_layer < backbone.num_blocks:
        raise ValueError(f'start_layer={start_layer} outside 0..{backbone.num_blocks - 1} '
                         f'({backbone.num_blocks} blocks)')
    return range(start_layer, backbone.num_blocks)


def _label_rounds(pairs: List[List[int]], num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """(R, B, C) one-hot grad_outputs: round j selects the j-th class of each image."""
    rounds = max((len(ids) for ids in pairs), default=0)
    out = like.new_zeros((rounds, len(pairs), num_classes))
    for b, ids in enumerate(pairs):
        for j, c in enumerate(ids):
            out[j, b, c] = 1
    return out


def getam_maps_from_logits(logits: torch.Tensor, backbone, labels: Labels, out_size,
                           start_layer: int = 6, retain_graph: bool = False,
                           grads_batched: bool = False) -> torch.Tensor:
    """GETAM maps (B, C, H, W) from a forward already run under ``capturing_attention``.

    For the joint phase, whose class logits come from the training forward: pass
    ``retain_graph=True`` to back-propagate the training loss afterwards.  Parameter ``.grad``
    are not touched.  See the module docstring for the grouping into rounds.
    """
    blocks = _check_start(backbone, start_layer)
    batch, num_classes = logits.shape
    grid = backbone.last_grid
    pairs = positive_classes(labels, batch, num_classes)
    rounds = _label_rounds(pairs, num_classes, logits)
    maps = logits.new_zeros((batch, num_classes) + tuple(grid), dtype=torch.float32)
    if rounds.shape[0] == 0:
        return upsample_maps(maps, out_size)
    attns = [backbone.attentions[l] for l in blocks]
    if grads_batched:
        grads = backbone.attention_gradients(logits, rounds, blocks, retain_graph=retain_graph,
                                             is_grads_batched=True)
        rows = getam_class_row(attns, grads)                        # (R, B, N)
    else:
        rows = []
        for j, sel in enumerate(rounds):
            keep = retain_graph or j < rounds.shape[0] - 1
            grads = backbone.attention_gradients(logits, sel, blocks, retain_graph=keep)
            rows.append(getam_class_row(attns, grads))              # (B, N)
            del grads
        rows = torch.stack(rows)
    per_round = readout_class_token_row(rows, backbone.num_prefix_tokens, grid)   # (R, B, h, w)
    for b, ids in enumerate(pairs):
        for j, c in enumerate(ids):
            maps[b, c] = per_round[j, b]
    return upsample_maps(maps, out_size)


def getam_maps(model_cls_fn, backbone, img: torch.Tensor, labels: Labels, start_layer: int = 6,
               out_size=None, grads_batched: bool = False) -> torch.Tensor:
    """Batched GETAM maps (B, C, H, W) of ``img`` (B, 3, H, W); zeros for absent classes:

        M_bc = up( ReLU( sum_{l >= start} [mean_h ReLU(G_l * A_l)] * [mean_h ReLU(G_l)] )[0, P:] )

    with G_l = d logit[b, c] / d A_l[b] (see the module docstring).

    Runs ``logits = model_cls_fn(img)`` with attention captured, the embedding and the blocks
    before ``start_layer`` without autograd, then :func:`getam_maps_from_logits`.
    ``out_size`` defaults to the input's (H, W).
    """
    _check_start(backbone, start_layer)
    size = tuple(out_size) if out_size is not None else tuple(img.shape[-2:])
    with autograd_on(img) as x, backbone.capturing_attention(grad_from_block=start_layer):
        logits = model_cls_fn(x)
        maps = getam_maps_from_logits(logits, backbone, labels, size, start_layer,
                                      retain_graph=False, grads_batched=grads_batched)
    backbone.clear_captured()
    return maps


def _owner_parameters(model_cls_fn, backbone) -> list:
    owner = getattr(model_cls_fn, '__self__', None)
    module = owner if isinstance(owner, torch.nn.Module) else backbone
    return list(module.parameters())


def getam_maps_reference(model_cls_fn, backbone, img: torch.Tensor, labels: Labels,
                         start_layer: int = 6) -> torch.Tensor:
    """The reference procedure (``generate_cam_2``, ``docs/methods/getam.md`` §2.4), one
    (image, class) at a time:

        logits = model_cls_fn(batch)                          once, attention hooks on
        for b, c in positive pairs:
            zero parameter grads; logits[b, c].backward(retain_graph=True)
            S = sum_{l >= start} mean_h ReLU(G_l[b] * A_l[b]) * mean_h ReLU(G_l[b])
            M[b, c] = up( ReLU(S[0, P:]).reshape(h, w) )

    ``G_l`` is read from the tensor hooks on the attentions (``backbone.attention_grads``).
    The parameters' ``.grad`` are restored to what they were on entry.  The slow baseline
    for tests and the benchmark.
    """
    _check_start(backbone, start_layer)
    params = _owner_parameters(model_cls_fn, backbone)
    with autograd_on(img) as x, backbone.capturing_attention(grads=True):
        if not any(p.requires_grad for p in params):
            x = x.detach().requires_grad_(True)   # frozen model: still build the graph
        logits = model_cls_fn(x)
        maps = getam_maps_reference_from_logits(logits, backbone, labels, img.shape[-2:],
                                                start_layer, params)
    backbone.clear_captured()
    return maps


def getam_maps_reference_from_logits(logits: torch.Tensor, backbone, labels: Labels, out_size,
                                     start_layer: int = 6, params=None) -> torch.Tensor:
    """The loop of :func:`getam_maps_reference` on a forward already run under
    ``capturing_attention(grads=True)``; ``params`` (default the backbone's) get their
    ``.grad`` zeroed before each backward and restored at the end.  The graph is kept."""
    blocks = _check_start(backbone, start_layer)
    params = list(backbone.parameters()) if params is None else list(params)
    saved = [p.grad for p in params]
    batch, num_classes = logits.shape
    grid = backbone.last_grid
    maps = logits.new_zeros((batch, num_classes) + tuple(grid), dtype=torch.float32)
    for b, ids in enumerate(positive_classes(labels, batch, num_classes)):
        for c in ids:
            for p in params:
                p.grad = None
            logits[b, c].backward(retain_graph=True)
            row = getam_class_row([backbone.attentions[l][b] for l in blocks],
                                  [backbone.attention_grads[l][b] for l in blocks])
            maps[b, c] = readout_class_token_row(row, backbone.num_prefix_tokens, grid)
    for p, g in zip(params, saved):
        p.grad = g
    return upsample_maps(maps, out_size)


def fit_to_multiple(img: torch.Tensor, divisor: int) -> torch.Tensor:
    """Resize (bilinear) to the nearest multiple of ``divisor`` in each side (at least one)."""
    h, w = img.shape[-2:]
    size = (max(divisor, round(h / divisor) * divisor), max(divisor, round(w / divisor) * divisor))
    if size == (h, w):
        return img
    return F.interpolate(img, size=size, mode='bilinear', align_corners=False)


@CAM_GENERATORS.register_module()
class GETAMCAM(BaseCAMGenerator):
    """GETAM maps as a CAM generator (for ``MakeCAMs`` / ``multiscale_cams``).

    The model exposes ``cls_logits(img) -> (B, C)`` (or ``forward_cls``) and its
    :class:`~wsss_getam.models.GETAMViT` as the ``backbone`` attribute (dotted path).  Maps
    are :func:`getam_maps` at the input size; the classes outside ``class_ids`` are zeros (all
    classes when None).  An input whose sides are not multiples of ``size_divisor`` (32:
    GETAMNet's multiple; 16 is enough for a bare ViT) is resized to the nearest multiple and
    its maps resized back (bilinear, align_corners=False) -- an extension: the reference
    computes the maps on 256 x 256 crops only.

    Args:
        start_layer: first block of the layer sum (6: the last six of twelve).
        size_divisor: the multiple the model's input sides must be.
        backbone: dotted path of the ViT in the model.
        grads_batched: one vmapped backward instead of one per round.
    """

    needs_grad = True

    def __init__(self, start_layer: int = 6, size_divisor: int = 32, backbone: str = 'backbone',
                 grads_batched: bool = False):
        self.start_layer = int(start_layer)
        self.size_divisor = int(size_divisor)
        self.backbone = backbone
        self.grads_batched = bool(grads_batched)

    def __call__(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        with autograd_on(img) as x:
            return self.class_maps(model, x, class_ids)

    @staticmethod
    def logits_fn(model):
        for name in ('cls_logits', 'forward_cls'):
            fn = getattr(model, name, None)
            if callable(fn):
                return fn
        raise AttributeError(f'{type(model).__name__} has neither cls_logits(img) nor '
                             'forward_cls(img); GETAMCAM needs the (B, C) class logits')

    def class_maps(self, model, img: torch.Tensor, class_ids=None) -> torch.Tensor:
        logits_fn = self.logits_fn(model)
        try:
            backbone = model.get_submodule(self.backbone)
        except AttributeError as err:
            raise AttributeError(f'{type(model).__name__} has no sub-module {self.backbone!r}; '
                                 'set GETAMCAM(backbone=...) to the path of its GETAMViT') from err
        x = fit_to_multiple(img, self.size_divisor)
        maps = getam_maps(logits_fn, backbone, x, class_ids, self.start_layer,
                          grads_batched=self.grads_batched)
        if maps.shape[-2:] != img.shape[-2:]:
            maps = F.interpolate(maps, size=img.shape[-2:], mode='bilinear', align_corners=False)
        return maps
