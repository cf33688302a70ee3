"""Any timm model as a CAM backbone: the last (or chosen) feature map at a set output stride."""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn as nn

from ..io import DataFileError
from ..registry import MODELS


def missing_weight_file_error(path, option: str) -> DataFileError:
    """The error for a weight file that is not there, naming the option and where it looked.

    A relative path is resolved against the working directory (no config says which that
    is), so the message gives the absolute path and, for a relative one, the directory.
    """
    path = os.fspath(path)
    where = os.path.abspath(os.path.expanduser(path))
    if not os.path.isabs(os.path.expanduser(path)):
        where += f' (relative to the working directory {os.getcwd()})'
    return DataFileError(f'weight file not found: {option}={path!r}, looked at {where}. Nothing '
                         f'is downloaded at run time: put the file there, give {option}= an '
                         f'existing file, or set {option}=None')


def load_state_dict_file(path, option: str = 'checkpoint') -> dict:
    """Load a local weight file (``.pth``/``.bin`` with ``weights_only=True``, or ``.safetensors``).

    ``option`` is the name of the argument the path came from (``checkpoint``, ``pretrained``,
    ``init_checkpoint``): a missing file is an error naming it and the absolute path.
    ``path`` may be an item reference (``'item:torchvision-vgg16'``, see
    :mod:`wsss_core.prepare.refs`).
    """
    from ..prepare.items import is_item_ref, item_name_of
    from ..prepare.refs import resolve_path
    ref, path = path, os.fspath(resolve_path(path))     # 'item:NAME' -> the item's file
    if not os.path.isfile(os.path.expanduser(path)):
        if is_item_ref(ref):
            name = item_name_of(ref)[0]
            raise DataFileError(f'weight file not found: {option}={ref!r} is {path}, which '
                                f'does not exist: run  wsss-prepare {name}  (set $WSSS_WEIGHTS '
                                'if the weights live elsewhere)')
        raise missing_weight_file_error(path, option)
    path = os.path.expanduser(path)
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # UnpicklingError for a file holding code, or a damaged file
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = next((ln for ln in lines if 'GLOBAL' in ln), lines[0] if lines else '')
        raise DataFileError(
            f'cannot load weight file {path} with weights_only=True: {type(exc).__name__}: '
            f'{why} (a weight file must hold tensors only; convert one you trust to a plain '
            'state dict or .safetensors)') from exc
    for key in ('state_dict', 'model', 'module'):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


@MODELS.register_module()
class TimmBackbone(nn.Module):
    """``timm.create_model(name, features_only=True, output_stride=...)``, one feature map out.

    Args:
        model_name: a timm model name (e.g. ``resnet50``, ``vgg16``).
        output_stride: 8, 16 or 32 (dilates the last stages where timm supports it).
        out_index: which feature level to return (default the last).
        checkpoint: local weight file loaded into the timm model (non-strict, missing keys
            listed in the log); ``pretrained=True`` uses the local timm/HF cache only.
        **model_kwargs: passed to ``timm.create_model`` (e.g. tiny widths for tests).
    """

    def __init__(self, model_name: str, output_stride: int = 32, out_index: int = -1,
                 pretrained: bool = False, checkpoint: Optional[str] = None, **model_kwargs):
        super().__init__()
        import timm
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        kwargs = dict(features_only=True, pretrained=pretrained, out_indices=(out_index,),
                      **model_kwargs)
        if output_stride != 32:
            kwargs['output_stride'] = output_stride
        self.model = timm.create_model(model_name, **kwargs)
        self.out_channels = self.model.feature_info.channels()[-1]
        self.output_stride = self.model.feature_info.reduction()[-1]
        if checkpoint:
            self.missing_keys = self._load(checkpoint)

    def _load(self, checkpoint) -> list:
        state = load_state_dict_file(checkpoint)
        result = self.model.load_state_dict(state, strict=False)
        return list(result.missing_keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[-1]
