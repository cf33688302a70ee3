"""Initial weights for DeepLab: local files and the local timm cache only; nothing is downloaded.

Two sources (``docs/methods/deeplab.md#42-initial-weights``):

* **ImageNet** backbone weights: a local file in torchvision/timm names (``conv1.weight``,
  ``layer1.0.conv1.weight``, ...; the classifier ``fc.*`` is dropped), or a timm model name
  whose weights are already in the local Hugging Face / torch-hub cache
  (:func:`timm_cached_state`).  torchvision and timm ResNets put the stride on the 3x3 conv:
  use them with ``DeepLabResNet(stride_in_1x1=False)``.
* **COCO-initialised DeepLab** (deeplab-pytorch's ``deeplabv1_resnet101-coco.pth``, converted
  from the authors' Caffe model): its names (``layer1.conv1.conv.weight``,
  ``layer2.block1.reduce.bn.running_mean``, ``aspp.c0.weight``, optionally under ``base.``)
  are mapped by :func:`convert_deeplab_pytorch_keys`.  These weights expect Caffe input (BGR,
  0..255 minus the mean, ``CaffeNormalize``) and ``stride_in_1x1=True``.

A missing file is a :class:`~wsss_core.io.DataFileError` naming the file; a file that matches
none of the backbone's weights, or with a wrong tensor shape, is an error naming the file
and the keys.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from wsss_core.io import DataFileError
from wsss_core.models.timm_backbone import load_state_dict_file

__all__ = ['read_weight_file', 'is_deeplab_pytorch_layout', 'convert_deeplab_pytorch_keys',
           'timm_cached_state', 'load_backbone_weights', 'load_segmentor_weights']

logger = logging.getLogger('wsss')

_PREFIXES = ('module.', 'base.', 'model.')
_BLOCK_PARTS = {'reduce': '1', 'conv3x3': '2', 'increase': '3'}
_RE_STEM = re.compile(r'^layer1\.conv1\.(conv|bn)\.(.+)$')
_RE_BLOCK = re.compile(r'^layer([2-5])\.block(\d+)\.(reduce|conv3x3|increase|shortcut|proj)'
                       r'\.(conv|bn)\.(.+)$')
_RE_ASPP = re.compile(r'^aspp\.(?:stages\.)?c(\d+)\.(weight|bias)$')


def read_weight_file(path, option: str = 'pretrained') -> Dict[str, torch.Tensor]:
    """A local state dict (``weights_only=True``; ``state_dict``/``model`` wrappers unwrapped).

    ``option`` is the argument that gave ``path``, named when the file is missing.
    """
    return load_state_dict_file(path, option)


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def is_deeplab_pytorch_layout(state: Dict[str, torch.Tensor]) -> bool:
    """True when the keys follow deeplab-pytorch's Caffe-converted names."""
    return any(_RE_STEM.match(_strip(k)) or _RE_BLOCK.match(_strip(k)) for k in state)


def convert_deeplab_pytorch_keys(state: Dict[str, torch.Tensor]
                                 ) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], list]:
    """Map deeplab-pytorch names to ours: ``(backbone_state, aspp_state, unknown_keys)``.

    ``layer1.conv1.{conv,bn}`` -> ``conv1`` / ``bn1``;
    ``layer{k}.block{i}.{reduce,conv3x3,increase}.{conv,bn}``
    -> ``layer{k-1}.{i-1}.{conv,bn}{1,2,3}``;
    ``...shortcut`` (older: ``proj``) -> ``...downsample.{0,1}``;
    ``aspp.c{i}`` (older: ``aspp.stages.c{i}``) -> ``convs.{i}`` of :class:`~.aspp.ASPPv2`.
    """
    backbone, aspp, unknown = {}, {}, []
    for raw_key, value in state.items():
        key = _strip(raw_key)
        if key.endswith('num_batches_tracked'):
            continue
        m = _RE_STEM.match(key)
        if m:
            backbone[f"{'conv1' if m.group(1) == 'conv' else 'bn1'}.{m.group(2)}"] = value
            continue
        m = _RE_BLOCK.match(key)
        if m:
            stage, block, part, kind, rest = m.groups()
            prefix = f'layer{int(stage) - 1}.{int(block) - 1}'
            if part in ('shortcut', 'proj'):
                name = f"{prefix}.downsample.{0 if kind == 'conv' else 1}.{rest}"
            else:
                name = f'{prefix}.{kind}{_BLOCK_PARTS[part]}.{rest}'
            backbone[name] = value
            continue
        m = _RE_ASPP.match(key)
        if m:
            aspp[f'convs.{m.group(1)}.{m.group(2)}'] = value
            continue
        unknown.append(raw_key)
    return backbone, aspp, unknown


def timm_cached_state(model_name: str) -> Dict[str, torch.Tensor]:
    """ImageNet weights of a timm model, read from the local caches only.

    Looks in the Hugging Face hub cache (``model.safetensors`` / ``pytorch_model.bin`` of the
    model's ``hf_hub_id``) and in torch hub's ``checkpoints/`` folder (the file of its URL).
    Raises :class:`DataFileError` listing where it looked; never downloads.
    """
    from timm.models import get_pretrained_cfg
    cfg = get_pretrained_cfg(model_name)
    if cfg is None:
        raise DataFileError(f"timm has no pretrained weights named '{model_name}' "
                            "(use e.g. 'resnet101.tv_in1k')")
    looked = []
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache
        for filename in ('model.safetensors', 'pytorch_model.bin'):
            path = try_to_load_from_cache(cfg.hf_hub_id, filename)
            looked.append(f'hf://{cfg.hf_hub_id}/{filename}')
            if isinstance(path, str) and os.path.isfile(path):
                return read_weight_file(path)
    for candidate in (cfg.file, cfg.url and Path(torch.hub.get_dir()) / 'checkpoints'
                      / os.path.basename(cfg.url)):
        if candidate:
            looked.append(str(candidate))
            if os.path.isfile(candidate):
                return read_weight_file(candidate)
    raise DataFileError(f"timm weights '{model_name}' are not in the local cache (nothing is "
                        f"downloaded at run time); looked for: {', '.join(looked)}. Put a "
                        'weight file on disk and pass pretrained=<path> instead')


def _load_checked(module: nn.Module, state: Dict[str, torch.Tensor], source: str) -> dict:
    """``load_state_dict(strict=False)`` with shape errors and empty overlaps named."""
    own = module.state_dict()
    bad = [f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
           for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f'{source}: {len(bad)} weight(s) have the wrong shape for '
                         f'{type(module).__name__}, e.g. {bad[:3]}')
    matched = [k for k in state if k in own]
    if not matched:
        raise ValueError(f'{source}: none of its {len(state)} weights matches '
                         f'{type(module).__name__} (first keys: {list(state)[:3]})')
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith('num_batches_tracked')]
    return dict(source=source, loaded=len(matched), missing=missing,
                unexpected=list(result.unexpected_keys))


def load_backbone_weights(backbone: nn.Module, pretrained: Optional[str] = None,
                          timm_weights: Optional[str] = None) -> dict:
    """Load ImageNet or converted DeepLab weights into a :class:`~.resnet_deeplab.DeepLabResNet`.

    Returns a report: ``source``, ``layout``, ``loaded`` (count), ``missing``, ``unexpected``.
    """
    if pretrained and timm_weights:
        raise ValueError('give pretrained (a local file) or timm_weights (a timm name), not both')
    if pretrained:
        state, source = read_weight_file(pretrained, 'pretrained'), os.fspath(pretrained)
    else:
        state, source = timm_cached_state(timm_weights), f'timm:{timm_weights}'
    if is_deeplab_pytorch_layout(state):
        state, _, _ = convert_deeplab_pytorch_keys(state)
        layout = 'deeplab-pytorch'
    else:
        state = {_strip(k): v for k, v in state.items() if not _strip(k).startswith('fc.')}
        layout = 'torchvision/timm'
    report = dict(_load_checked(backbone, state, source), layout=layout)
    if report['missing']:
        logger.warning('%s: %d backbone weight(s) not in the file, e.g. %s', source,
                       len(report['missing']), report['missing'][:3])
    return report


def load_segmentor_weights(model: nn.Module, path, load_head: bool = True) -> dict:
    """Initialise a DeepLab segmentor from a whole-model checkpoint.

    Accepts a converted deeplab-pytorch checkpoint (backbone + ASPP names mapped; the ASPP is
    loaded only when ``load_head`` and its shapes fit, e.g. not the COCO classes into a VOC
    head) or a state dict of our own segmentor (``backbone.*``, ``decode_head.*``).
    """
    source = os.fspath(path)
    state = read_weight_file(path, 'init_checkpoint')
    if is_deeplab_pytorch_layout(state):
        backbone_state, head_state, unknown = convert_deeplab_pytorch_keys(state)
    else:
        state = {_strip(k): v for k, v in state.items()}
        backbone_state = {k[len('backbone.'):]: v for k, v in state.items()
                          if k.startswith('backbone.')}
        head_state = {k[len('decode_head.'):]: v for k, v in state.items()
                      if k.startswith('decode_head.')}
        unknown = [k for k in state if not k.startswith(('backbone.', 'decode_head.'))]
    report = dict(backbone=_load_checked(model.backbone, backbone_state, source),
                  unknown=unknown, head='not loaded')
    if load_head and head_state:
        own = model.decode_head.state_dict()
        fits = all(k in own and own[k].shape == v.shape for k, v in head_state.items())
        if fits:
            report['head'] = _load_checked(model.decode_head, head_state, source)
        else:
            report['head'] = 'skipped: shapes differ from this head (e.g. other classes)'
    logger.info('%s: loaded %d backbone weights, head %s', source,
                report['backbone']['loaded'],
                report['head'] if isinstance(report['head'], str) else 'loaded')
    return report
