"""The saliency maps OAA's and NSROM's VOC configs read, for ``wsss-prepare`` (the
``wsss_prepare_items`` hook; NSROM builds on this plugin and uses the same item).

``voc12-saliency-aug``: the ``saliency_aug`` maps NSROM's authors publish as a tar.gz
(the salient-object maps of the 10582 ``train_aug`` images that the OAA / NSROM line of
work used; OAA's own copy sits inside its ``VOCdevkit.tar.gz`` on a shared drive and can
be given with ``--from``).  Installed into ``VOCdevkit/VOC2012/saliency_aug`` after a
check that every ``train_aug`` image has a map of its size.  No checksum is published:
the SHA-256 is recorded at the first download.  Plain data: no torch import.
"""
from __future__ import annotations

from wsss_core.prepare.items import Download, PrepareItem

SALIENCY_AUG = PrepareItem(
    name='voc12-saliency-aug', kind='saliency',
    description="salient-object maps of VOC train_aug (NSROM's published saliency_aug; "
                'OAA and NSROM configs)',
    root='data', path='VOCdevkit/VOC2012/saliency_aug', requires=('voc12-aug',),
    install='wsss_core.prepare.installers:install_saliency_archive',
    downloads=(Download('saliency_aug.tar.gz',
                        urls=('https://nsrom-2.oss-cn-shanghai.aliyuncs.com/saliency_aug.tar.gz',),
                        manual="or OAA's VOCdevkit.tar.gz (a Google Drive link in OAA's README): "
                               'give --from its saliency_aug folder'),),
    licence="published by NSROM's authors for research use (no licence stated)",
    disk_size=150_000_000)


def items():
    return [SALIENCY_AUG]
