"""The weight files and saliency maps GETAM's configs name, for ``wsss-prepare`` (the
``wsss_prepare_items`` hook): the timm ViT tags of the reference's four backbones, fetched
from the Hugging Face hub as single ``.safetensors`` files into ``$WSSS_WEIGHTS/timm/`` and
loaded with ``GETAMViT(checkpoint='item:timm-<tag>')``; the VOC and COCO saliency maps its
authors published (by hand: OneDrive).

The hub publishes no checksum beside the download URL that a program reads without its
API, so the SHA-256 of each file is recorded at its first download and checked from then
on (see :mod:`wsss_core.prepare.ledger`).  Plain data: nothing here imports torch.
"""
from __future__ import annotations

from wsss_core.prepare.items import Download, PrepareItem

_HUB = 'https://huggingface.co/timm/{tag}/resolve/main/model.safetensors'

#: (timm tag, approximate MB, what it is) of :data:`wsss_getam.models.vit_backbone.BACKBONES`
TIMM_TAGS = (
    ('vit_base_r50_s16_384.orig_in21k_ft_in1k', 396,
     'ViT-B/16 hybrid (ResNet-50 stem), ImageNet-21k -> 1k, 384 px: GETAM vitb_hybrid'),
    ('vit_base_patch16_384.orig_in21k_ft_in1k', 347,
     'ViT-B/16, ImageNet-21k -> 1k, 384 px: GETAM vitb'),
    ('deit_base_patch16_384.fb_in1k', 348, 'DeiT-B/16, ImageNet-1k, 384 px: GETAM deit'),
    ('deit_base_distilled_patch16_384.fb_in1k', 351,
     'DeiT-B/16 distilled, ImageNet-1k, 384 px: GETAM deit_distilled'),
)


def timm_item(tag: str, mb: float, what: str) -> PrepareItem:
    """The item ``timm-<tag>``: the tag's ``model.safetensors`` from the hub."""
    filename = f'{tag}.safetensors'
    return PrepareItem(
        name=f'timm-{tag}', kind='weights', description=what, root='weights',
        path=f'timm/{filename}',
        downloads=(Download(filename, urls=(_HUB.format(tag=tag),), approx_mb=mb),),
        licence='timm weights on the Hugging Face hub: Apache-2.0 (see the model card)',
        disk_size=int(mb * 1e6))


#: the saliency maps GETAM's configs read (its README links them on OneDrive: by hand)
SALIENCY = tuple(
    PrepareItem(
        name=f'{data}-saliency-getam', kind='saliency',
        description=f"salient-object maps of {what} (GETAM's published maps)",
        root='data', path=f'{folder}/saliency_getam', requires=(requires,),
        install='wsss_core.prepare.installers:install_saliency_archive',
        downloads=(Download(f'saliency_getam_{data}', manual=(
            f"GETAM's README links the {what} maps on OneDrive ({link}); download them by "
            'hand')),),
        licence="published by GETAM's authors for research use (no licence stated)")
    for data, what, folder, requires, link in (
        ('voc12', 'VOC train_aug', 'VOCdevkit/VOC2012', 'voc12-aug',
         'https://1drv.ms/u/s!Ak3sXyXVg781yW78vNuDTblg2qdJ'),
        ('coco14', 'COCO 2014 train', 'coco2014', 'coco14',
         'https://1drv.ms/u/s!Ak3sXyXVg781ymyj2mLjZJMTMF-G?e=1QWtp1')))


def items():
    return [timm_item(*row) for row in TIMM_TAGS] + list(SALIENCY)
