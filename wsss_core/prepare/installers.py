"""The installs of the core's items that are more than "copy the file" or "unpack the
archive": each is called by :func:`~.fetch.prepare_item` as ``fn(item, files, base, roots)``
(``files``: download file name -> verified local path; ``base``: the item's root folder;
``roots``: both roots) and returns every file it wrote under ``base``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping

from .items import PrepareItem

__all__ = ['install_voc12_aug', 'install_coco14', 'install_resnet38', 'install_saliency_archive',
           'install_wsol_metadata']


def install_voc12_aug(item: PrepareItem, files: Dict[str, Path], base: Path,
                      roots: Mapping[str, Path]) -> List[Path]:
    """VOC 2012 + SBD merged in place (:func:`~.convert.sbd.merge_voc_sbd`): the
    ``SegmentationClassAug`` masks, the ``train_aug`` / ``trainval_aug`` lists and
    ``cls_labels.npy`` next to VOC's ``JPEGImages``."""
    from .convert.sbd import merge_voc_sbd
    report = merge_voc_sbd(base / 'VOCdevkit' / 'VOC2012', base / 'SBD')
    return [Path(p) for p in report.files]


def install_coco14(item: PrepareItem, files: Dict[str, Path], base: Path,
                   roots: Mapping[str, Path]) -> List[Path]:
    """COCO 2014 in the layout :class:`~wsss_core.datasets.coco14.COCO2014` reads::

        coco2014/JPEGImages/{train2014,val2014}/COCO_*.jpg     (the image zips)
        coco2014/annotations/instances_{train,val}2014.json    (the annotation zip)
        coco2014/SegmentationClass/{train2014,val2014}/*.png   (class masks, 0..80 / 255)
        coco2014/ImageSets/{train14,val14}.txt                 (the ids, sorted)
    """
    from .convert.coco import coco_class_masks
    from .extract import safe_extract
    root = base / item.path
    written: List[Path] = []
    for name in ('train2014.zip', 'val2014.zip'):
        written += [Path(p) for p in safe_extract(files[name], root / 'JPEGImages')]
    written += [Path(p) for p in safe_extract(files['annotations_trainval2014.zip'], root,
                                              members_filter=lambda n: 'instances_' in n)]
    lists = root / 'ImageSets'
    lists.mkdir(parents=True, exist_ok=True)
    for split, folder in (('train14', 'train2014'), ('val14', 'val2014')):
        instances = root / 'annotations' / f'instances_{folder}.json'
        out_dir = root / 'SegmentationClass' / folder
        stems = coco_class_masks(instances, out_dir)
        written += [out_dir / f'{s}.png' for s in stems]
        listing = lists / f'{split}.txt'
        listing.write_text(''.join(f'{s}\n' for s in sorted(stems)))
        written.append(listing)
    return written


def install_resnet38(item: PrepareItem, files: Dict[str, Path], base: Path,
                     roots: Mapping[str, Path]) -> List[Path]:
    """psa's ResNet-38 from the MXNet ``.params`` (converted, no MXNet needed) or a
    psa-converted ``.pth`` (checked against ``ResNet38``), saved as ``item.path``."""
    from .convert.state_dict import save_state_dict
    src = next(iter(files.values()))
    dest = item.location(base)
    if _is_mxnet_params(src):
        from .convert.mxnet import convert_resnet38_params
        state = convert_resnet38_params(src)
    else:
        state = _checked_resnet38_pth(src)
    save_state_dict(state, dest)
    return [dest]


def _is_mxnet_params(path: Path) -> bool:
    with open(path, 'rb') as fh:
        head = fh.read(8)
    return len(head) == 8 and int.from_bytes(head, 'little') == 0x112


def _checked_resnet38_pth(path: Path):
    import torch

    from ..models.resnet38 import ResNet38
    from ..models.timm_backbone import load_state_dict_file
    from .convert.state_dict import check_state_dict, model_shapes
    state = load_state_dict_file(path, 'pretrained')
    with torch.device('meta'):
        expected = model_shapes(ResNet38())
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if k in expected}
    check_state_dict(state, expected, 'ResNet38', path)
    return state


#: data set folder (first part of a saliency item's path) -> (data type, its root, split)
SALIENCY_TARGETS = {'VOCdevkit': ('VOC2012', 'VOCdevkit/VOC2012', 'train_aug'),
                    'coco2014': ('COCO2014', 'coco2014', 'train')}


def install_saliency_archive(item: PrepareItem, files: Dict[str, Path], base: Path,
                            roots: Mapping[str, Path]) -> List[Path]:
    """An archive (or, with ``--from``, a folder) of ``<id>.png`` saliency maps, checked
    against the training split of the data set the item's path lies in (VOC ``train_aug``
    or COCO ``train``: every image has a map of its size) and installed as ``item.path``
    (:func:`~.saliency.install_saliency_maps`)."""
    from .saliency import install_saliency_maps
    data_type, data_dir, split = SALIENCY_TARGETS[Path(item.path).parts[0]]
    src = next(iter(files.values()))
    data_root = base / data_dir
    return install_saliency_maps(src, data_root, split, data_type=data_type,
                                 dest=str(item.location(base).relative_to(data_root)))


def install_wsol_metadata(item: PrepareItem, files: Dict[str, Path], base: Path,
                          roots: Mapping[str, Path]) -> List[Path]:
    """The images and wsolevaluation's ``metadata/<name>/`` in the layout ``WSOLMetadata``
    reads (``data_root = <data>/wsol``)::

        wsol/metadata/<CUB|ILSVRC>/{train,val,test}/{image_ids,class_labels,...}.txt
        wsol/dataset/CUB/<class folder>/<image>.jpg      (CUB_200_2011/images/ of the tgz)
        wsol/dataset/ILSVRC/{train/<wnid>/*.JPEG, val/*.JPEG}   (ImageNet's tars, --from)

    ImageNet's train tar holds one tar per class: each is unpacked into its ``<wnid>/``.
    """
    from .extract import safe_extract
    name = 'CUB' if item.name.startswith('cub') else 'ILSVRC'
    root = base / item.path
    written = [Path(p) for p in safe_extract(
        files['wsolevaluation-master.zip'], root, strip_components=1,
        members_filter=lambda n: n.split('/', 1)[-1].startswith(f'metadata/{name}/'))]
    images = root / 'dataset' / name
    if name == 'CUB':
        written += [Path(p) for p in safe_extract(
            files['CUB_200_2011.tgz'], images, strip_components=2,
            members_filter=lambda n: n.startswith('CUB_200_2011/images/'))]
        return written
    written += [Path(p) for p in safe_extract(files['ILSVRC2012_img_val.tar'], images / 'val')]
    for inner in safe_extract(files['ILSVRC2012_img_train.tar'], images / 'train'):
        inner = Path(inner)
        if inner.suffix == '.tar':
            written += [Path(p) for p in safe_extract(inner, inner.with_suffix(''))]
            inner.unlink()
    return written
