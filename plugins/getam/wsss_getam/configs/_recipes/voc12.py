# Fragment (not run alone): GETAM's VOC 2012 training recipe, as the stage getam.
# Included through  _base_ = ['getam::_recipes/voc12.py'] ; the including config adds its test
# stage and sets what differs by stage name (a backbone:
# stages = dict(getam=dict(model=dict(backbone=dict(model_name=..., checkpoint=...))))).
#
# The reference's VOC 2012 run (docs/methods/getam.md §2.7) with the released code's
# arithmetic: train_aug, 20 epochs of batch 4, 256 crops after a long side in [230, 292], one
# SGD group at lr 0.04 built as the released code builds it (reference_optimizer=True: its
# weight decay 5e-4 lands in the momentum slot, so momentum 5e-4 and no weight decay),
# classification for half the run then the joint phase at x 0.1, poly 0.9; GETAMNet on the
# ViT-B/16 hybrid (timm weights: the item timm-vit_base_r50_s16_384.orig_in21k_ft_in1k, which
# wsss-prepare fetches), decoder width 256, test sizes 256 / 320 / 480, the saliency loss on
# the released code's aliased target (joint.saliency_loss.mode='reference').  The corrected
# run (intended SGD: weight decay 5e-4, no momentum; target 1 - saliency) overrides both:
# getam::voc12_vitb_hybrid_fixed.py.
stages = dict(
    getam=dict(
        type='TrainGETAM',
        model=dict(type='GETAMNet', num_classes=20, features=256, test_sizes=(256, 320, 480),
                   backbone=dict(type='GETAMViT', model_name='vitb_hybrid',
                                 checkpoint='item:timm-vit_base_r50_s16_384.orig_in21k_ft_in1k'),
                   joint=dict(saliency_loss=dict(mode='reference'))),
        train_split='train_aug', max_epochs=20, batch_size=4, crop=256, long_side=(230, 292),
        lr=0.04, weight_decay=5e-4, reference_optimizer=True, cls_fraction=0.5,
        seg_lr_scale=0.1, power=0.9, num_workers=4, log_interval=100),
)
