"""GETAM's ViT encoder (``docs/methods/getam.md`` §2.2, §2.3 encoder part): a timm
ViT / DeiT / R50+ViT hybrid that

* runs at any input size that is a multiple of its patch size (16): the grid part of the
  position embedding is resized bilinearly to the token grid at every forward, the prefix
  token embeddings are kept as they are (DPT's "flexible" forward);
* returns four hooks for the DPT decoder: the token tensors (B, N, D) output by four blocks,
  or, on the hybrid, the ResNet stage-0 and stage-1 maps then two blocks' tokens;
* keeps, when asked (:meth:`GETAMViT.capturing_attention`), every block's post-softmax
  attention ``A_l = softmax(Q_l K_l^T / sqrt(d_head))`` (B, heads, N, N) of the last forward
  in the autograd graph, so that ``d y / d A_l`` can be taken (the GETAM map).  Ordinary
  forwards keep timm's fused scaled-dot-product attention and its memory savings.

The model itself is ``timm.create_model(name, num_classes=0, drop_rate=0, attn_drop_rate=0,
drop_path_rate=0)``; nothing is vendored.  Weights come from a local file (``checkpoint=``)
or, with ``pretrained=True``, from the local Hugging Face / torch hub cache only: nothing is
downloaded at run time.
"""
from __future__ import annotations

import contextlib
import logging
import os
from functools import partial
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_core.io import DataFileError
from wsss_core.models.timm_backbone import load_state_dict_file, missing_weight_file_error
from wsss_core.registry import MODELS

__all__ = ['BACKBONES', 'TINY_BACKBONES', 'GETAMViT', 'resize_grid_pos_embed']

logger = logging.getLogger(__name__)

#: the reference's ``--backbone`` keys (``docs/methods/getam.md#22-backbones``): exact
#: current-timm tags and hook blocks
#: (on the hybrid, the first two hooks are ResNet stages 0 and 1, the others ViT blocks)
BACKBONES: Dict[str, dict] = {
    'vitb_hybrid': dict(model_name='vit_base_r50_s16_384.orig_in21k_ft_in1k',
                        hook_blocks=(0, 1, 8, 11)),
    'vitb': dict(model_name='vit_base_patch16_384.orig_in21k_ft_in1k', hook_blocks=(2, 5, 8, 11)),
    'deit': dict(model_name='deit_base_patch16_384.fb_in1k', hook_blocks=(2, 5, 8, 11)),
    'deit_distilled': dict(model_name='deit_base_distilled_patch16_384.fb_in1k',
                           hook_blocks=(2, 5, 8, 11)),
}

_TINY = dict(img_size=64, embed_dim=32, depth=4, num_heads=2)
#: random-weight tiny variants (configs for ``MODELS.build``) for tests: 4 blocks of width 32
TINY_BACKBONES: Dict[str, dict] = {
    'vit': dict(type='GETAMViT', model_name='vit_tiny_patch16_224', **_TINY),
    'deit_distilled': dict(type='GETAMViT', model_name='deit_tiny_distilled_patch16_224', **_TINY),
    'hybrid': dict(type='GETAMViT', model_name='vit_base_r50_s16_384', **_TINY,
                   hybrid_resnet=dict(layers=(1, 1, 1), channels=(16, 32, 64), stem_chs=16,
                                      num_groups=4)),
}


def resize_grid_pos_embed(pos_embed: torch.Tensor, num_prefix: int, old_grid: Tuple[int, int],
                          new_grid: Tuple[int, int]) -> torch.Tensor:
    """DPT's flexible position embedding (``docs/methods/getam.md#22-backbones``):
    ``[P_prefix, up(P_grid)]``.

    ``pos_embed`` is (1, num_prefix + h0 w0, D); the grid part is laid out as (h0, w0), resized
    bilinearly (align_corners=False, torch's default, as the reference) to ``new_grid`` and
    flattened back; the ``num_prefix`` prefix-token embeddings are unchanged.
    """
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    if tuple(new_grid) == tuple(old_grid):
        return pos_embed
    d = grid.shape[-1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode='bilinear', align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d)
    return torch.cat([prefix, grid], dim=1)


def _hybrid_resnetv2(layers=(1, 1, 1), channels=(16, 32, 64), stem_chs=16, num_groups=32,
                   in_chans=3) -> nn.Module:
    """A ResNetV2 built like timm's hybrid stem (StdConv 'same', GroupNorm), at any width.

    timm's hybrid factories build the (3, 4, 9) ResNet-50 with fixed widths; this is the same
    design with chosen depths, widths and GroupNorm groups (for tiny test models).
    """
    from timm.layers import GroupNormAct, StdConv2dSame
    from timm.models.resnetv2 import ResNetV2
    return ResNetV2(layers=tuple(layers), channels=tuple(channels), stem_chs=stem_chs,
                    in_chans=in_chans, num_classes=0, global_pool='', preact=False,
                    stem_type='same', conv_layer=partial(StdConv2dSame, eps=1e-8),
                    norm_layer=partial(GroupNormAct, num_groups=num_groups))


def _default_hook_blocks(depth: int, hybrid: bool) -> Tuple[int, ...]:
    """Blocks [L/4, L/2, 3L/4, L] - 1 (2, 5, 8, 11 of 12 blocks); on the hybrid ResNet stages
    0, 1 and blocks 3L/4 - 1, L - 1."""
    quarters = tuple(max(0, depth * k // 4 - 1) for k in (1, 2, 3, 4))
    return (0, 1) + quarters[2:] if hybrid else quarters


def _local_pretrained_file(model_name: str) -> str:
    """The cached weight file of a timm tag (HF hub cache, then torch hub), never downloaded."""
    from timm.models import get_pretrained_cfg
    cfg = get_pretrained_cfg(model_name)
    tried = []
    if cfg is not None and cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache
        for fname in ([cfg.hf_hub_filename] if cfg.hf_hub_filename else
                      ['model.safetensors', 'pytorch_model.bin', 'open_clip_pytorch_model.bin']):
            path = try_to_load_from_cache(cfg.hf_hub_id, fname)
            if isinstance(path, str) and os.path.isfile(path):
                return path
            tried.append(f'hf://{cfg.hf_hub_id}/{fname}')
    if cfg is not None and cfg.url:
        path = os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(cfg.url))
        if os.path.isfile(path):
            return path
        tried.append(path)
    raise DataFileError(
        f'pretrained weights for {model_name!r} are not in the local cache (looked for '
        f'{", ".join(tried) or "no known source"}); nothing is downloaded at run time: pass '
        'checkpoint=<local weight file> or put the file in the cache')


@MODELS.register_module()
class GETAMViT(nn.Module):
    """A timm ViT (plain, DeiT, DeiT-distilled or R50 hybrid) with hooks and attention capture.

    Args:
        model_name: a :data:`BACKBONES` key (``vitb_hybrid``, ``vitb``, ``deit``,
            ``deit_distilled``) or any timm ViT name / ``name.tag``.
        hook_blocks: the four hooked blocks (hybrid: ResNet stage, stage, block, block);
            default from :data:`BACKBONES`, else [L/4, L/2, 3L/4, L] - 1.
        checkpoint: a local weight file (``.pth``/``.bin``/``.safetensors``, or timm's JAX
            ``.npz``) loaded into the timm model (non-strict; missing keys are logged).
        pretrained: load the tag's weights from the local HF / torch hub cache (an error
            names what to do when they are not there).
        img_size: the size the model is built at (its position-embedding grid).
        hybrid_resnet: ResNetV2 kwargs (``layers``, ``channels``, ``stem_chs``,
            ``num_groups``) replacing a hybrid's ResNet-50 stem (tiny hybrids for tests).
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``embed_dim``, ``depth``).

    Attributes: ``embed_dim``, ``num_prefix_tokens`` (1, or 2 with a distillation token),
    ``patch_size`` (the token stride, 16), ``is_hybrid``, ``hook_blocks``,
    ``hook_channels`` ([D] * 4; hybrid [C_stage0, C_stage1, D, D]), ``num_blocks``,
    ``attentions`` and ``attention_grads`` (one entry per block, see
    :meth:`capturing_attention`; they hold the graph until :meth:`clear_captured` or the
    next capturing forward), ``last_grid`` (the token grid of the last forward).
    """

    def __init__(self, model_name: str, hook_blocks: Optional[Sequence[int]] = None,
                 checkpoint: Optional[str] = None, pretrained: bool = False,
                 img_size: int = 384, hybrid_resnet: Optional[dict] = None, **timm_kwargs):
        super().__init__()
        entry = BACKBONES.get(model_name, {})
        self.model_name = entry.get('model_name', model_name)
        self.vit = self._create(self.model_name, img_size, hybrid_resnet, timm_kwargs)
        self._check_attention_modules()
        self.embed_dim = int(self.vit.embed_dim)
        self.num_prefix_tokens = int(self.vit.num_prefix_tokens)
        self.num_blocks = len(self.vit.blocks)
        self.is_hybrid = self._resnet() is not None
        self.patch_size = self._token_stride()
        hooks = hook_blocks if hook_blocks is not None else entry.get('hook_blocks')
        if hooks is None:
            hooks = _default_hook_blocks(self.num_blocks, self.is_hybrid)
        self.hook_blocks = self._check_hooks(hooks)
        self.hook_channels = self._hook_channels()
        self.capture_attention = False
        self.attentions: List[Optional[torch.Tensor]] = [None] * self.num_blocks
        self.attention_grads: List[Optional[torch.Tensor]] = [None] * self.num_blocks
        self._keep_grads = False
        self._grad_from_block = 0
        self._stage_outputs: Dict[int, torch.Tensor] = {}
        self.last_grid: Optional[Tuple[int, int]] = None
        self._install_hooks()
        if pretrained and not checkpoint:
            checkpoint = _local_pretrained_file(self.model_name)
        self.missing_keys = self.load_checkpoint(checkpoint) if checkpoint else []

    # -- construction -----------------------------------------------------------------------
    @staticmethod
    def _create(model_name, img_size, hybrid_resnet, timm_kwargs) -> nn.Module:
        import timm
        kwargs = dict(num_classes=0, drop_rate=0., attn_drop_rate=0., drop_path_rate=0.)
        kwargs.update(timm_kwargs)
        kwargs.update(img_size=img_size, pretrained=False, dynamic_img_size=True)
        if hybrid_resnet is not None:
            from timm.layers import HybridEmbed
            kwargs['embed_layer'] = partial(HybridEmbed, backbone=_hybrid_resnetv2(**hybrid_resnet))
        return timm.create_model(model_name, **kwargs)

    def _check_attention_modules(self) -> None:
        for i, blk in enumerate(self.vit.blocks):
            attn = getattr(blk, 'attn', None)
            if not (hasattr(attn, 'fused_attn') and isinstance(getattr(attn, 'attn_drop', None),
                                                               nn.Module)):
                raise TypeError(f'{self.model_name}: block {i} has no timm Attention with '
                                '`fused_attn` and `attn_drop`; GETAMViT needs a standard timm ViT')
        self._fused_default = [bool(blk.attn.fused_attn) for blk in self.vit.blocks]

    def _resnet(self) -> Optional[nn.Module]:
        from timm.layers import HybridEmbed
        embed = self.vit.patch_embed
        return embed.backbone if isinstance(embed, HybridEmbed) else None

    def _token_stride(self) -> int:
        embed = self.vit.patch_embed
        stride = tuple(embed.patch_size)
        if self.is_hybrid:
            stride = tuple(r * p for r, p in zip(embed.feature_ratio, embed.patch_size))
        if stride[0] != stride[1]:
            raise ValueError(f'{self.model_name}: non-square token stride {stride}')
        return int(stride[0])

    def _check_hooks(self, hooks) -> Tuple[int, ...]:
        hooks = tuple(int(h) for h in hooks)
        if len(hooks) != 4:
            raise ValueError(f'hook_blocks needs 4 entries, got {list(hooks)}')
        blocks = hooks[2:] if self.is_hybrid else hooks
        if any(not 0 <= b < self.num_blocks for b in blocks):
            raise ValueError(f'hook_blocks {list(hooks)} out of range for {self.num_blocks} blocks')
        if self.is_hybrid and any(not 0 <= s < len(self._resnet().stages) for s in hooks[:2]):
            raise ValueError(f'hybrid hook_blocks {list(hooks)}: the first two are ResNet '
                             f'stages (0..{len(self._resnet().stages) - 1})')
        return hooks

    def _hook_channels(self) -> List[int]:
        if not self.is_hybrid:
            return [self.embed_dim] * 4
        info = {f['module']: f['num_chs'] for f in self._resnet().feature_info}
        return [int(info[f'stages.{s}']) for s in self.hook_blocks[:2]] + [self.embed_dim] * 2

    def _install_hooks(self) -> None:
        for i, blk in enumerate(self.vit.blocks):
            blk.attn.attn_drop.register_forward_hook(partial(self._on_attention, i))
        if self.is_hybrid:
            for s in self.hook_blocks[:2]:
                self._resnet().stages[s].register_forward_hook(partial(self._on_stage, s))

    #: a Pretrain stage's weights come back through ``checkpoint=`` (wsss_core.models.weights)
    pretrained_option = 'checkpoint'

    def pretrained_state_dict(self) -> dict:
        """The timm model's state dict: the names :meth:`load_checkpoint` reads."""
        return self.vit.state_dict()

    def load_checkpoint(self, path) -> List[str]:
        """Load a local weight file into the timm model; returns the missing keys.

        ``.npz`` goes through timm's JAX loader; other files through timm's ViT checkpoint
        filter (key conversions, position-embedding resampling to the built grid).
        """
        from wsss_core.prepare.refs import resolve_path
        path = os.fspath(resolve_path(path))     # 'item:NAME' -> the item's file
        if path.endswith('.npz'):
            if not os.path.isfile(path):
                raise missing_weight_file_error(path, 'checkpoint')
            self.vit.load_pretrained(path)
            return []
        from timm.models.vision_transformer import checkpoint_filter_fn
        state = checkpoint_filter_fn(load_state_dict_file(path), self.vit)
        result = self.vit.load_state_dict(state, strict=False)
        missing = list(result.missing_keys)
        unexpected = [k for k in result.unexpected_keys if not k.startswith('head')]
        if missing or unexpected:
            logger.warning('%s: %d missing keys (%s), %d unexpected keys (%s) in %s',
                           self.model_name, len(missing), ', '.join(missing[:8]),
                           len(unexpected), ', '.join(unexpected[:8]), path)
        return missing

    # -- attention capture ------------------------------------------------------------------
    @property
    def capture_attention(self) -> bool:
        return self._capture

    @capture_attention.setter
    def capture_attention(self, value: bool) -> None:
        """Capture on: every block uses the explicit softmax path (its ``attn_drop`` sees A)."""
        self._capture = bool(value)
        for blk, fused in zip(self.vit.blocks, self._fused_default):
            blk.attn.fused_attn = fused and not self._capture

    @contextlib.contextmanager
    def capturing_attention(self, grads: bool = False,
                            grad_from_block: int = 0) -> Iterator['GETAMViT']:
        """Capture attention in the forwards run inside; restores the previous state on exit.

        ``grads``: also register a tensor hook on every captured ``A_l`` that stores
        ``dy / dA_l`` into ``attention_grads[l]`` at each backward (the reference's hooks).
        ``grad_from_block`` = k: run the embedding and the blocks before k without autograd and
        with the fused attention (their ``attentions`` stay None): a map that needs gradients
        of blocks >= k only saves that graph, memory and time.  Never for a training forward,
        whose loss must reach every parameter.
        """
        saved = (self._capture, self._keep_grads, self._grad_from_block)
        self.capture_attention = True
        self._keep_grads, self._grad_from_block = bool(grads), int(grad_from_block)
        for blk, fused in zip(self.vit.blocks[:self._grad_from_block], self._fused_default):
            blk.attn.fused_attn = fused
        try:
            yield self
        finally:
            self.capture_attention = saved[0]
            self._keep_grads, self._grad_from_block = saved[1], saved[2]

    def clear_captured(self) -> None:
        """Drop the captured attentions and gradients (and the graph they keep alive)."""
        self.attentions = [None] * self.num_blocks
        self.attention_grads = [None] * self.num_blocks

    def _on_attention(self, index: int, module, inputs, output) -> None:
        if not self._capture:
            return
        self.attentions[index] = output
        if self._keep_grads and output.requires_grad:
            output.register_hook(partial(self._on_attention_grad, index))

    def _on_attention_grad(self, index: int, grad: torch.Tensor) -> None:
        self.attention_grads[index] = grad

    def _on_stage(self, stage: int, module, inputs, output) -> None:
        self._stage_outputs[stage] = output

    def attention_gradients(self, output: torch.Tensor, grad_outputs=None,
                            blocks: Optional[Sequence[int]] = None, retain_graph: bool = True,
                            is_grads_batched: bool = False) -> List[torch.Tensor]:
        """``G_l = d output / d A_l`` for the captured attentions of ``blocks`` (default all).

        ``torch.autograd.grad`` on the attention tensors only: no parameter gradient, and no
        backward through the layers before the first requested block.  A block that does not
        reach ``output`` gets zeros.
        """
        blocks = range(self.num_blocks) if blocks is None else blocks
        attns = [self.attentions[b] for b in blocks]
        if any(a is None or not a.requires_grad for a in attns):
            raise RuntimeError('no attention in the autograd graph for some block: run the '
                               'forward inside `with backbone.capturing_attention():` with '
                               'autograd on (and grad_from_block <= the first block needed)')
        grads = torch.autograd.grad(output, attns, grad_outputs=grad_outputs,
                                    retain_graph=retain_graph, allow_unused=True,
                                    is_grads_batched=is_grads_batched)
        shape = (lambda a: grad_outputs.shape[:1] + a.shape) if is_grads_batched else \
            (lambda a: a.shape)
        return [g if g is not None else a.new_zeros(shape(a)) for g, a in zip(grads, attns)]

    # -- forward ----------------------------------------------------------------------------
    def grid_of(self, img: torch.Tensor) -> Tuple[int, int]:
        """(H/16, W/16); an error when H or W is not a multiple of the patch size."""
        h, w = img.shape[-2:]
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f'{self.model_name} needs an input height and width that are '
                             f'multiples of {p}, got {h}x{w}: resize, crop or pad the image')
        return h // p, w // p

    def _embed(self, img: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        """Patch tokens, prefix tokens, resized position embedding: (B, N, D)."""
        vit = self.vit
        x = vit.patch_embed(img)                       # (B, h, w, D) (dynamic_img_size)
        b = x.shape[0]
        x = x.reshape(b, grid[0] * grid[1], x.shape[-1])
        prefix = [t.expand(b, -1, -1) for t in
                  (vit.cls_token, getattr(vit, 'dist_token', None), vit.reg_token)
                  if t is not None]
        if vit.pos_embed is not None:
            n_pos_prefix = 0 if vit.no_embed_class else self.num_prefix_tokens
            pos = resize_grid_pos_embed(vit.pos_embed, n_pos_prefix,
                                        tuple(vit.patch_embed.grid_size), grid)
            if vit.no_embed_class:
                x = torch.cat(prefix + [x + pos], dim=1)
            else:
                x = torch.cat(prefix + [x], dim=1) + pos
        else:
            x = torch.cat(prefix + [x], dim=1)
        return vit.norm_pre(vit.patch_drop(vit.pos_drop(x)))

    def forward(self, img: torch.Tensor) -> dict:
        """``dict(hooks=[t1, t2, t3, t4], grid=(h, w), tokens=norm(x_L))``; ``grid`` is also
        kept as ``last_grid``.

        Plain ViT: each hook is the (B, N, D) output of a hooked block (N counts the prefix
        tokens).  Hybrid: t1, t2 are the ResNet stage maps (B, C, H/4, W/4), (B, C, H/8, W/8).
        """
        grid = self.grid_of(img)
        if self._capture:
            self.clear_captured()
        self._stage_outputs = {}
        self.last_grid = grid
        grad_on, start = torch.is_grad_enabled(), self._grad_from_block
        with torch.set_grad_enabled(grad_on and start <= 0):
            x = self._embed(img, grid)
        hooks = {}
        block_hooks = self.hook_blocks[2:] if self.is_hybrid else self.hook_blocks
        for i, blk in enumerate(self.vit.blocks):
            if grad_on and i == start and not x.requires_grad:
                x = x.detach().requires_grad_(True)    # the graph starts here
            with torch.set_grad_enabled(grad_on and i >= start):
                x = blk(x)
            if i in block_hooks:
                hooks[i] = x
        tokens = self.vit.norm(x)
        outs = [hooks[i] for i in block_hooks]
        if self.is_hybrid:
            outs = [self._stage_outputs.pop(s) for s in self.hook_blocks[:2]] + outs
        self._stage_outputs = {}
        return dict(hooks=outs, grid=grid, tokens=tokens)
