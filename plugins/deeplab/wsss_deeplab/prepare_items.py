"""The weight file DeepLab's VOC recipe starts from, for ``wsss-prepare`` (the
``wsss_prepare_items`` hook): the authors' COCO-initialised DeepLab v2 ResNet-101.

The authors released it as a Caffe model (``init.caffemodel`` inside
``prototxt_and_model.zip``); :func:`install_coco_init` converts it with
:func:`~.convert_caffe.convert_deeplab_caffemodel` (no Caffe needed) and saves it as
``$WSSS_WEIGHTS/deeplabv1_resnet101-coco.pth`` under this plugin's names.  With ``--from``
it also takes the ``.caffemodel`` itself or an already converted ``.pth`` (deeplab-pytorch's
or the copy NSROM's authors publish), which is checked by loading it into the model.
The source publishes no checksum: the SHA-256 is recorded at the first download.
"""
from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Mapping

from wsss_core.prepare.items import Download, PrepareItem

COCO_INIT = PrepareItem(
    name='deeplabv2-r101-coco', kind='weights',
    description="DeepLab v2 ResNet-101 initialised on MS COCO (the authors' Caffe release, "
                'converted): the start of the VOC DeepLab recipe',
    root='weights', path='deeplabv1_resnet101-coco.pth',
    install='wsss_deeplab.prepare_items:install_coco_init',
    downloads=(Download('prototxt_and_model.zip',
                        urls=('http://liangchiehchen.com/projects/released/'
                              'deeplab_aspp_resnet101/prototxt_and_model.zip',),
                        manual='or give --from the init.caffemodel, or a converted .pth: '
                               "deeplab-pytorch's, or NSROM's copy at https://nsrom-2."
                               'oss-cn-shanghai.aliyuncs.com/deeplabv1_resnet101-coco.pth',
                        approx_mb=750),),
    licence='DeepLab release: for research use (see the DeepLab project page)',
    disk_size=180_000_000)


def items():
    return [COCO_INIT]


def install_coco_init(item: PrepareItem, files: Dict[str, Path], base: Path,
                      roots: Mapping[str, Path]) -> List[Path]:
    """The download (zip, ``.caffemodel`` or ``.pth``) -> ``item.path`` (see the module)."""
    from wsss_core.prepare.convert.state_dict import save_state_dict
    src = next(iter(files.values()))
    dest = item.location(base)
    member = _caffemodel_in_zip(src)
    if member is not None:                   # the authors' prototxt_and_model.zip
        from wsss_core.prepare.extract import safe_extract
        with tempfile.TemporaryDirectory() as tmp:
            safe_extract(src, Path(tmp), members_filter=lambda n: n == member)
            state = _from_caffemodel(Path(tmp) / member)
    elif src.suffix in ('.pth', '.pt', '.safetensors') or zipfile.is_zipfile(src):
        state = _checked_pth(src)            # converted already (torch files are zips too)
    else:
        state = _from_caffemodel(src)
    save_state_dict(state, dest)
    return [dest]


def _caffemodel_in_zip(path: Path):
    """The ``init.caffemodel`` member of a zip archive, or None (not a zip, or none in it)."""
    if path.suffix in ('.pth', '.pt') or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as zf:
        return next((n for n in zf.namelist() if n.endswith('init.caffemodel')), None)


def _target_model():
    """The model the weights must fit; None: the reference DeepLabV2 ResNet-101 with the
    file's class count (tests put a small model here)."""
    return None


def _from_caffemodel(path: Path):
    from .convert_caffe import convert_deeplab_caffemodel
    return convert_deeplab_caffemodel(path, _target_model())


def _checked_pth(path: Path):
    """A converted checkpoint, accepted when its backbone fits the reference DeepLabV2."""
    import torch

    from wsss_core.prepare.convert.state_dict import check_state_dict, model_shapes

    from .convert_caffe import _default_model
    from .models.weights import (convert_deeplab_pytorch_keys, is_deeplab_pytorch_layout,
                                 read_weight_file)
    state = read_weight_file(path, 'init_checkpoint')
    if is_deeplab_pytorch_layout(state):
        backbone, head, _ = convert_deeplab_pytorch_keys(state)
        state = {f'backbone.{k}': v for k, v in backbone.items()}
        state.update({f'decode_head.{k}': v for k, v in head.items()})
    backbone_only = {k: v for k, v in state.items() if k.startswith('backbone.')}
    check_state_dict(backbone_only, model_shapes(_target_model() or _default_model(21),
                                                 'backbone.'),
                     'DeepLabV2 ResNet-101 backbone', path)
    return {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            for k, v in state.items()}
