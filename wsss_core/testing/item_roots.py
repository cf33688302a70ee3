"""Mini data and weight roots in the real layouts of every ``wsss-prepare`` item, for running
the shipped real-data configs end to end (``tests/test_real_configs_smoke.py``).

:func:`write_data_root` writes under ``$WSSS_DATA`` what the data items install, a dozen
images per data set at the data set's real image sizes:

* ``voc12`` / ``voc12-aug`` -- ``VOCdevkit/VOC2012``: ``JPEGImages`` (12 JPEGs of VOC
  sizes, 500 x 375, 375 x 500, ...), ``SegmentationClass`` (palette PNGs with the 255
  boundary band VOC draws round each object), ``Annotations`` (the objects' class names),
  ``ImageSets/Segmentation/{train,val,trainval}.txt``, and an SBD tree
  (``SBD/benchmark_RELEASE/dataset/cls/*.mat``, ``train.txt``, ``val.txt``) merged by the
  installer's own :func:`~wsss_core.prepare.convert.sbd.merge_voc_sbd` into
  ``SegmentationClassAug``, ``ImageSets/SegmentationAug/{train_aug,trainval_aug}.txt`` and
  ``cls_labels.npy``: 4 VOC train + 5 SBD-only images make ``train_aug`` (9), 3 ``val``.
* ``voc12-saliency-{aug,poolnet,getam}`` -- 8-bit saliency PNGs of the ``train_aug``
  images (what the published archives cover).
* ``coco14`` -- ``coco2014``: ``JPEGImages/{train2014,val2014}``, ``SegmentationClass/...``
  (index PNGs 0..80 with 255 boundaries), ``ImageSets/{train14,val14}.txt`` (8 + 4);
  ``coco14-saliency-getam``: saliency PNGs of the train images.
* ``cub200-wsol`` / ``ilsvrc-wsol`` -- ``wsol``: wsolevaluation's ``metadata/<CUB|ILSVRC>/
  {train,test}/`` (``image_ids``, ``class_labels``, ``image_sizes``, ``localization``
  boxes) and the images under ``dataset/CUB/<class folder>/`` and
  ``dataset/ILSVRC/{train/<wnid>,val}/`` (8 train + 4 test each).

:func:`write_weights_root` writes under ``$WSSS_WEIGHTS`` a stand-in for every weight item:
a file of the item's name holding the keys its loader reads, at the shapes of the shrunk
networks of :data:`STANDIN_NETWORKS`: random convolutions; each BatchNorm's running
statistics are those of its input on generated images and its scale about a trained
network's (:data:`BN_SCALE`), so that a frozen-BN network keeps activations of a sane scale
and survives the recipes' learning rates as the real weights do; torchvision's ``fc``
classifier is included, which the loaders drop.  A config runs on them once its overrides
build the same networks.

Everything is written with numpy / Pillow / torch directly, seeded: the same files every time.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

__all__ = ['VOC_SIZES', 'VOC_TRAIN', 'VOC_VAL', 'SBD_ONLY', 'TRAIN_AUG', 'COCO_TRAIN',
           'COCO_VAL', 'WSOL_TRAIN', 'WSOL_TEST', 'STANDIN_NETWORKS', 'write_data_root',
           'write_weights_root', 'standin_state', 'write_roots', 'DATA_ITEMS']

#: image sizes (w, h) of the dozen images of each data set: VOC's usual sizes
VOC_SIZES: Tuple[Tuple[int, int], ...] = (
    (500, 375), (375, 500), (500, 333), (480, 360), (500, 375), (334, 500),
    (500, 281), (442, 500), (500, 366), (353, 500), (500, 400), (400, 300))

VOC_TRAIN = ('2007_000032', '2007_000039', '2007_000063', '2007_000068')
VOC_VAL = ('2007_000033', '2007_000042', '2007_000061')
SBD_ONLY = ('2008_000002', '2008_000003', '2008_000007', '2008_000008', '2008_000015')
#: VOC train + SBD train/val - VOC val (the merge's rule), sorted
TRAIN_AUG = tuple(sorted(VOC_TRAIN + SBD_ONLY))

COCO_TRAIN = tuple(f'COCO_train2014_{n:012d}' for n in (9, 25, 30, 34, 36, 42, 49, 61))
COCO_VAL = tuple(f'COCO_val2014_{n:012d}' for n in (42, 73, 74, 133))

WSOL_TRAIN, WSOL_TEST = 8, 4

#: VOC's 20 class names (Annotations XML), index 0 = class 1
_VOC_NAMES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
              'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
              'sheep', 'sofa', 'train', 'tvmonitor')

#: the shrunk networks the stand-in weights fit; a config's overrides build the same ones
STANDIN_NETWORKS: Dict[str, dict] = {
    # OAA / NSROM: VGG16 at 1/16 of its widths (torchvision names features.<i>.*)
    'torchvision-vgg16': dict(type='VGG16OAA', width_mult=1 / 16),
    # EDAM: ResNet-38 at 1/16 of its widths (psa names)
    'psa-resnet38': dict(type='ResNet38', width_mult=1 / 16),
    # MoANA (classifier, IRN, WSOL): torchvision's ResNet-50 at 1/16 of its widths
    'torchvision-resnet50': dict(type='TorchvisionResNet', depth=50, width_mult=1 / 16),
    # DeepLab v3+: torchvision names of a ResNet-101 with one block per stage, base width 4
    'torchvision-resnet101': dict(type='DeepLabResNet', depth=101, layers=(1, 1, 1, 1),
                                  base_width=4, stride_in_1x1=False),
    # DeepLab's COCO init: DeepLabV2 (91 COCO classes) on that ResNet, Caffe strides
    'deeplabv2-r101-coco': dict(type='DeepLabV2', num_classes=91, msc_scales=(),
                                backbone=dict(type='DeepLabResNet', depth=101,
                                              layers=(1, 1, 1, 1), base_width=4,
                                              stride_in_1x1=True, norm='frozen')),
}
#: GETAM's timm ViTs: 12 blocks (the hooks and the last-six GETAM layers unchanged) of width 32
TIMM_VIT_SHRINK = dict(embed_dim=32, num_heads=2, img_size=64)
#: the hybrid's ResNet stem, three stages of one block (hooks on stages 0 and 1 as the real one)
TIMM_HYBRID_RESNET = dict(layers=(1, 1, 1), channels=(16, 32, 64), stem_chs=16, num_groups=4)
_TIMM_TAGS = {'vit_base_r50_s16_384.orig_in21k_ft_in1k': 'vitb_hybrid',
              'vit_base_patch16_384.orig_in21k_ft_in1k': 'vitb',
              'deit_base_patch16_384.fb_in1k': 'deit',
              'deit_base_distilled_patch16_384.fb_in1k': 'deit_distilled'}


def timm_standin_backbone(model_name: str) -> dict:
    """The shrunk ``GETAMViT`` options for a GETAM backbone key (``vitb_hybrid``, ...)."""
    cfg = dict(TIMM_VIT_SHRINK)
    if model_name == 'vitb_hybrid':
        cfg['hybrid_resnet'] = dict(TIMM_HYBRID_RESNET)
    return cfg


for _tag, _key in _TIMM_TAGS.items():
    STANDIN_NETWORKS[f'timm-{_tag}'] = dict(type='GETAMViT', model_name=_key,
                                            **timm_standin_backbone(_key))


# ----------------------------------------------------------------------------- drawing
def _scene(size: Tuple[int, int], classes: Sequence[int], seed: int
           ) -> Tuple[np.ndarray, np.ndarray]:
    """An RGB image (h, w, 3) and its label map: one ellipse per class on a smooth, noisy
    background; the label map holds the class ids (0 background)."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.integers(30, 90, 3).astype(np.float32)
    img = base + 40 * (xx / w)[..., None] * rng.uniform(0.5, 1, 3) + 30 * (yy / h)[..., None]
    img += rng.normal(0, 6, (h, w, 3))
    label = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(label)
    for k, cls in enumerate(classes):
        cx = w * (0.3 + 0.4 * k / max(1, len(classes) - 1) if len(classes) > 1 else 0.5)
        cy = h * rng.uniform(0.4, 0.6)
        rx, ry = w * rng.uniform(0.12, 0.22), h * rng.uniform(0.15, 0.28)
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=int(cls))
    label = np.array(label)
    for cls in classes:
        colour = np.array([(cls * 53) % 200 + 50, (cls * 97) % 200 + 50, (cls * 31) % 200 + 50],
                          np.float32)
        img[label == cls] = 0.3 * img[label == cls] + 0.7 * colour
    return np.clip(img, 0, 255).astype(np.uint8), label


def _with_boundary(label: np.ndarray, width: int = 3) -> np.ndarray:
    """The label map with a ``width``-pixel 255 band on each side of every class edge (VOC's
    void boundary)."""
    import cv2
    edges = np.zeros(label.shape, np.uint8)
    for cls in np.unique(label):
        region = (label == cls).astype(np.uint8)
        grad = cv2.morphologyEx(region, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        edges |= grad
    band = cv2.dilate(edges, np.ones((2 * width - 1, 2 * width - 1), np.uint8)) > 0
    out = label.copy()
    out[band] = 255
    return out


def _saliency(label: np.ndarray) -> np.ndarray:
    """An 8-bit saliency map: the objects at ~230, soft edges, a little background noise."""
    import cv2
    sal = (label > 0).astype(np.float32) * 230
    sal = cv2.GaussianBlur(sal, (0, 0), 4)
    return np.clip(sal + 8, 0, 255).astype(np.uint8)


def _save_jpeg(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=90)


def _save_png(path: Path, arr: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        from ..io import save_label_png
        save_label_png(path, arr)
    else:
        Image.fromarray(arr.astype(np.uint8), mode='L').save(path)


def _write_list(path: Path, ids: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{i}\n' for i in ids))


# ----------------------------------------------------------------------------- VOC + SBD
def _voc_classes(index: int) -> Tuple[int, ...]:
    """Classes (1..20) of the index-th VOC image: one, every third image two."""
    first = 1 + (7 * index) % 20
    return (first, 1 + (7 * index + 11) % 20) if index % 3 == 2 else (first,)


def _write_sbd_mat(path: Path, seg: np.ndarray) -> None:
    """SBD's ``cls/<id>.mat``: struct GTcls with Segmentation, Boundaries, CategoriesPresent."""
    import scipy.io
    import scipy.sparse
    boundaries = np.empty((20, 1), dtype=object)
    for i in range(20):
        boundaries[i, 0] = scipy.sparse.csc_matrix(seg.shape, dtype=np.float64)
    present = np.array([[v] for v in np.unique(seg) if v], dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {'GTcls': {'Segmentation': seg.astype(np.uint8),
                                      'Boundaries': boundaries,
                                      'CategoriesPresent': present}})


def _write_voc_xml(path: Path, classes: Sequence[int], size: Tuple[int, int]) -> None:
    objects = ''.join(f'<object><name>{_VOC_NAMES[c - 1]}</name><difficult>0</difficult>'
                      '</object>' for c in classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<annotation><filename>{path.stem}.jpg</filename><size><width>{size[0]}'
                    f'</width><height>{size[1]}</height><depth>3</depth></size>{objects}'
                    '</annotation>\n')


def write_voc12_aug(data_root: Path) -> Path:
    """VOC 2012 + SBD merged (items ``voc12``, ``sbd``, ``voc12-aug``) and the three VOC
    saliency items; returns ``VOCdevkit/VOC2012``."""
    from ..prepare.convert.sbd import merge_voc_sbd
    voc = data_root / 'VOCdevkit' / 'VOC2012'
    sbd = data_root / 'SBD' / 'benchmark_RELEASE' / 'dataset'
    ids = VOC_TRAIN + VOC_VAL + SBD_ONLY
    labels = {}
    for index, (img_id, size) in enumerate(zip(ids, VOC_SIZES)):
        classes = _voc_classes(index)
        img, label = _scene(size, classes, seed=index)
        labels[img_id] = label
        _save_jpeg(voc / 'JPEGImages' / f'{img_id}.jpg', img)
        _write_voc_xml(voc / 'Annotations' / f'{img_id}.xml', classes, size)
        if img_id in SBD_ONLY:
            _write_sbd_mat(sbd / 'cls' / f'{img_id}.mat', label)
        else:
            _save_png(voc / 'SegmentationClass' / f'{img_id}.png', _with_boundary(label),
                      palette=True)
    # SBD's lists: its own images, one VOC train image (also in SBD) and one VOC val image
    # (which the merge keeps out of train_aug)
    _write_sbd_mat(sbd / 'cls' / f'{VOC_TRAIN[0]}.mat', labels[VOC_TRAIN[0]])
    _write_sbd_mat(sbd / 'cls' / f'{VOC_VAL[0]}.mat', labels[VOC_VAL[0]])
    _write_list(sbd / 'train.txt', SBD_ONLY[:4] + (VOC_TRAIN[0], VOC_VAL[0]))
    _write_list(sbd / 'val.txt', SBD_ONLY[4:])
    lists = voc / 'ImageSets' / 'Segmentation'
    _write_list(lists / 'train.txt', VOC_TRAIN)
    _write_list(lists / 'val.txt', VOC_VAL)
    _write_list(lists / 'trainval.txt', sorted(VOC_TRAIN + VOC_VAL))
    report = merge_voc_sbd(voc, data_root / 'SBD')
    assert report.train_aug == len(TRAIN_AUG), report
    for folder in ('saliency_aug', 'saliency_poolnet', 'saliency_getam'):
        for img_id in TRAIN_AUG:
            _save_png(voc / folder / f'{img_id}.png', _saliency(labels[img_id]))
    return voc


# ----------------------------------------------------------------------------- COCO 2014
def write_coco14(data_root: Path) -> Path:
    """``coco2014`` as the ``coco14`` installer lays it out (per-split folders, index PNGs
    0..80 / 255, ``ImageSets/{train14,val14}.txt``) and ``coco2014/saliency_getam``."""
    root = data_root / 'coco2014'
    for index, img_id in enumerate(COCO_TRAIN + COCO_VAL):
        folder = img_id.split('_')[1]
        classes = (1 + (13 * index) % 80,) if index % 3 else (1, 1 + (13 * index + 40) % 80)
        img, label = _scene(VOC_SIZES[index], classes, seed=100 + index)
        _save_jpeg(root / 'JPEGImages' / folder / f'{img_id}.jpg', img)
        _save_png(root / 'SegmentationClass' / folder / f'{img_id}.png', _with_boundary(label))
        if img_id in COCO_TRAIN:
            _save_png(root / 'saliency_getam' / f'{img_id}.png', _saliency(label))
    _write_list(root / 'ImageSets' / 'train14.txt', COCO_TRAIN)
    _write_list(root / 'ImageSets' / 'val14.txt', COCO_VAL)
    return root


# ----------------------------------------------------------------------------- WSOL
def _wsol_ids(name: str, split: str, index: int, cls: int) -> str:
    """An image id in wsolevaluation's form for ``name`` (CUB / ILSVRC)."""
    if name == 'CUB':
        folder = f'{cls + 1:03d}.Class_{cls + 1:03d}'
        return f'{folder}/Class_{cls + 1:03d}_{index:04d}_{100 + index}.jpg'
    if split == 'train':
        wnid = f'n{1440764 + cls:08d}'
        return f'train/{wnid}/{wnid}_{10026 + index}.JPEG'
    return f'val/ILSVRC2012_val_{index + 1 - WSOL_TRAIN:08d}.JPEG'


def write_wsol(data_root: Path, name: str, num_classes: int) -> Path:
    """``wsol/dataset/<name>/...`` and ``wsol/metadata/<name>/{train,test}/*.txt`` (image ids,
    class labels, image sizes, one box per object); returns ``wsol``."""
    root = data_root / 'wsol'
    offset = 0 if name == 'CUB' else 50
    counts = {'train': WSOL_TRAIN, 'test': WSOL_TEST}
    index = 0
    for split, count in counts.items():
        meta = root / 'metadata' / name / split
        rows: Dict[str, List[str]] = {'image_ids': [], 'class_labels': [], 'image_sizes': [],
                                      'localization': []}
        for k in range(count):
            cls = (37 * (index + offset)) % num_classes
            img_id = _wsol_ids(name, split, index, cls)
            size = VOC_SIZES[index % len(VOC_SIZES)]
            img, label = _scene(size, (1,), seed=200 + offset + index)
            _save_jpeg(root / 'dataset' / name / img_id, img)
            ys, xs = np.nonzero(label)
            rows['image_ids'].append(img_id)
            rows['class_labels'].append(f'{img_id},{cls}')
            rows['image_sizes'].append(f'{img_id},{size[0]},{size[1]}')
            rows['localization'].append(f'{img_id},{xs.min()},{ys.min()},{xs.max()},{ys.max()}')
            index += 1
        for file, lines in rows.items():
            _write_list(meta / f'{file}.txt', lines)
    return root


def write_data_root(data_root) -> Path:
    """Every data item's layout under ``data_root`` (see the module docstring)."""
    data_root = Path(data_root)
    write_voc12_aug(data_root)
    write_coco14(data_root)
    write_wsol(data_root, 'CUB', 200)
    write_wsol(data_root, 'ILSVRC', 1000)
    return data_root


# ----------------------------------------------------------------------------- weights
#: Caffe-style networks (DeepLab's COCO init) see BGR 0..255 minus the mean; the others
#: ImageNet-normalised RGB
_CAFFE_STYLE = ('deeplabv2-r101-coco',)


def _calibration_batch(caffe: bool, seed: int):
    """Two generated scenes of 96 x 96 as the network sees them (the statistics of natural,
    smooth images differ from white noise's by far, which a frozen BN would amplify)."""
    import torch
    imgs = np.stack([_scene((96, 96), (1 + seed % 20, 1 + (seed + 7) % 20), seed + k)[0]
                     for k in range(2)]).astype(np.float32)
    if caffe:
        x = imgs[..., ::-1] - np.array([104.008, 116.669, 122.675], np.float32)
    else:
        x = (imgs / 255 - np.array([0.485, 0.456, 0.406], np.float32)) / \
            np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)


#: BatchNorm scales of the stand-ins, about those of trained ResNets: 0.5, and 0.1 on the last
#: BatchNorm of a residual branch (``bn3`` of a bottleneck), which keeps a deep frozen-BN
#: network of random convolutions near the identity, so that the recipes' learning rates
#: (0.1 on a ResNet-50 for MoANA and IRN) do not blow it up in its first steps
BN_SCALE, BRANCH_END_BN_SCALE = 0.5, 0.1


def _calibrate_batchnorm(net, batch, seed: int) -> None:
    """Set every BatchNorm's running mean and variance to the statistics of its input on
    ``batch`` (one forward in eval mode, layer by layer through pre-hooks), its scale to
    :data:`BN_SCALE` (:data:`BRANCH_END_BN_SCALE` for ``bn3``) times 1 + N(0, 0.05) and its
    shift to N(0, 0.05)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    names = {module: name for name, module in net.named_modules()}

    def calibrate(module, inputs):
        x = inputs[0]
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3)) + 1e-3)
        n = module.running_var.shape
        scale = BRANCH_END_BN_SCALE if names[module].endswith('bn3') else BN_SCALE
        module.weight.data.copy_(scale * (1 + 0.05 * torch.randn(n, generator=gen)))
        module.bias.data.copy_(0.05 * torch.randn(n, generator=gen))

    norms = [m for m in net.modules() if isinstance(getattr(m, 'running_var', None),
                                                        torch.Tensor)]
    hooks = [m.register_forward_pre_hook(calibrate) for m in norms]
    try:
        net.eval()
        with torch.no_grad():
            net(batch)
    finally:
        for h in hooks:
            h.remove()


def standin_state(item_name: str) -> Dict:
    """The stand-in state dict of a weight item, in the names its loader reads (see the
    module docstring); seeded by the item's name."""
    import torch
    seed = zlib.crc32(item_name.encode())
    from ..registry import MODELS, build
    cfg = dict(STANDIN_NETWORKS[item_name])
    torch.manual_seed(seed)
    model = build(cfg, MODELS)
    if cfg['type'] == 'GETAMViT':
        state = model.vit.state_dict()       # what timm's file holds: the timm model's keys
    else:
        net = model.backbone if cfg['type'] == 'DeepLabV2' else model
        _calibrate_batchnorm(net, _calibration_batch(item_name in _CAFFE_STYLE, seed), seed)
        state = model.state_dict()
        if cfg['type'] in ('TorchvisionResNet', 'DeepLabResNet'):   # torchvision's classifier
            gen = torch.Generator().manual_seed(seed)
            width = net.layer4[-1].conv3.out_channels
            state['fc.weight'] = 0.01 * torch.randn(1000, width, generator=gen)
            state['fc.bias'] = torch.zeros(1000)
    return {k: v.detach().clone().contiguous() for k, v in state.items()
            if not k.endswith('num_batches_tracked')}


def _register_standin_types(names: Sequence[str]) -> None:
    """Register the models the stand-ins are built from (core + the plugins that own them)."""
    from ..plugin_loader import load_plugins
    types = {STANDIN_NETWORKS[n]['type'] for n in names}
    wanted = {'VGG16OAA': 'oaa', 'DeepLabResNet': 'deeplab', 'DeepLabV2': 'deeplab',
              'GETAMViT': 'getam'}
    plugins = sorted({wanted[t] for t in types if t in wanted} | {'deeplab'})
    load_plugins(plugins)


def write_weights_root(weights_root, names: Sequence[str] = ()) -> Dict[str, Path]:
    """A stand-in file for each weight item in ``names`` (default all of
    :data:`STANDIN_NETWORKS`) at the item's path under ``weights_root``; returns
    ``{item: path}``."""
    from ..prepare.convert.state_dict import save_state_dict
    from ..prepare.items import all_items
    names = list(names) or list(STANDIN_NETWORKS)
    _register_standin_types(names)
    items = all_items()
    written = {}
    for name in names:
        path = items[name].location(Path(weights_root))
        path.parent.mkdir(parents=True, exist_ok=True)
        state = standin_state(name)
        if path.suffix == '.safetensors':
            from safetensors.torch import save_file
            save_file(state, os.fspath(path))
        else:
            save_state_dict(state, path)
        written[name] = path
    return written


def write_roots(base) -> Tuple[Path, Path]:
    """``<base>/data`` and ``<base>/weights`` with everything; returns both (set them as
    ``$WSSS_DATA`` and ``$WSSS_WEIGHTS``)."""
    data, weights = Path(base) / 'data', Path(base) / 'weights'
    write_data_root(data)
    write_weights_root(weights)
    return data, weights


#: for listings / asserts: every data item this module lays out
DATA_ITEMS: Tuple[str, ...] = ('voc12', 'sbd', 'voc12-aug', 'voc12-saliency-aug',
                               'voc12-saliency-poolnet', 'voc12-saliency-getam', 'coco14',
                               'coco14-saliency-getam', 'cub200-wsol', 'ilsvrc-wsol')
