"""The saliency maps EDAM's VOC config reads, for ``wsss-prepare`` (the
``wsss_prepare_items`` hook).

``voc12-saliency-poolnet``: the class-agnostic PoolNet maps EDAM's authors published on
Baidu Yun (a link and extraction code in EDAM's README), which no program can download:
``wsss-prepare voc12-saliency-poolnet --from DIR_OR_ARCHIVE`` checks that every
``train_aug`` image has a map of its size and installs them into
``VOCdevkit/VOC2012/saliency_poolnet``.  Plain data: no torch import.
"""
from __future__ import annotations

from wsss_core.prepare.items import Download, PrepareItem

SALIENCY_POOLNET = PrepareItem(
    name='voc12-saliency-poolnet', kind='saliency',
    description="PoolNet salient-object maps of VOC train_aug (EDAM's)",
    root='data', path='VOCdevkit/VOC2012/saliency_poolnet', requires=('voc12-aug',),
    install='wsss_core.prepare.installers:install_saliency_archive',
    downloads=(Download('saliency_poolnet', manual="EDAM's README links the maps on Baidu Yun "
                        '(https://pan.baidu.com/s/1LfTwcm22Zup84yB635Ij1g, code fjst); '
                        'download them by hand'),),
    licence="published by EDAM's authors for research use (no licence stated)",
    disk_size=150_000_000)


def items():
    return [SALIENCY_POOLNET]
