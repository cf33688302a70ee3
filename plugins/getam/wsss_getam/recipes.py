"""GETAM's named training recipes (``TrainGETAM(recipe=NAME, ...)``; see
:mod:`wsss_core.pipeline.recipes` for how options and models override them).

* ``voc12``: the reference's VOC 2012 run (spec 2.7): train_aug, 20 epochs of batch 4, 256
  crops after a long side in [230, 292], one SGD group at lr 0.04 with the intended weight
  decay 5e-4 (``reference_optimizer=True`` for the released quirk), classification for half
  the run then the joint phase at x 0.1, poly 0.9; GETAMNet on the ViT-B/16 hybrid (timm
  weights from the local cache), decoder width 256, test sizes 256 / 320 / 480.
"""
from __future__ import annotations

TRAIN_RECIPES = {
    'voc12': dict(
        model=dict(type='GETAMNet', num_classes=20, features=256, test_sizes=(256, 320, 480),
                   backbone=dict(type='GETAMViT', model_name='vitb_hybrid', pretrained=True)),
        train_split='train_aug', max_epochs=20, batch_size=4, crop=256, long_side=(230, 292),
        lr=0.04, weight_decay=5e-4, reference_optimizer=False, cls_fraction=0.5,
        seg_lr_scale=0.1, power=0.9, num_workers=4, log_interval=100),
}
