# A fragment (not a runnable config): the stages of moana::synthetic.py (both arms, plain CAM
# and MoANA) switched to IRN's ResNet-50 stand-in pretrained on the ShapeCorpus.
# moana::synthetic_pretrained.py merges `moana_pretrained_stages` into its `stages` by name.
#
#   moana_pretrain: torchvision's ResNet-50 at a quarter of the width with IRN's strides
#       (output stride 16), pretrained on the ShapeCorpus (the offline stand-in for ImageNet,
#       docs/pretraining.md) rendered at 64 px, 9 epochs (about 18 min on 2 cores; at 6, corpus
#       top-1 0.83, the loss was still falling fast); cached in $WSSS_CACHE/pretrained.
#   <arm>_classify: the CAM network's trunk is that ResNet-50 inside WithMoANA (enabled or
#       not), loaded from the pretrained weights (pretrained_key='backbone.backbone'), with
#       the reference's frozen stem and BatchNorm statistics (norm_eval), at output stride 8
#       instead of 16 (the weights are the same; at 96 px stride 16 leaves a 6 x 6 CAM, while
#       VOC's 512 px crops at stride 16 give 32 x 32: stride 8 keeps the baseline's 12 x 12),
#       ImageNet normalisation, the pretrained trunk at half of AdamW 2e-3 (the MoANA block and
#       the classifier are new layers at the full rate; the reference: SGD x1 / x10 on ImageNet
#       features; at a tenth the classifier underfit on the 8-class SyntheticShapes variant),
#       16 epochs instead of the from-scratch config's 12 (at 12 the training loss was still
#       falling, 0.13 in the last epoch, and val mAP reached 0.955 and 0.957 on two
#       SyntheticShapes variants; RESULTS.md, session 14).
#   <arm>_irn: as the reference, the relation network's frozen trunk is the plain pretrained
#       ResNet-50 (output stride 16, every level), not the CAM network's (backbone_from=None).
resnet50_standin = dict(type='TorchvisionResNet', depth=50, width_mult=0.25, output_stride=16)
_cam_trunk = dict(resnet50_standin, output_stride=8, norm_eval=True, frozen_stem=True)
_irn_trunk = dict(resnet50_standin, out_indices=(0, 1, 2, 3, 4), norm_eval=True)
_norm = dict(_delete_=True, type='NormalizeImages')
_optim = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
              paramwise_cfg=dict(custom_keys={'backbone.backbone': dict(lr_mult=0.5)}))


def _arm_overrides(prefix):
    return {
        f'{prefix}_classify': dict(
            pretrained_from='moana_pretrain', pretrained_key='backbone.backbone',
            model=dict(backbone=dict(backbone=dict(_cam_trunk, _delete_=True)),
                       data_preprocessor=_norm),
            optim_wrapper=_optim, max_epochs=16),
        f'{prefix}_irn': dict(
            pretrained_from='moana_pretrain', backbone_from=None,
            model=dict(backbone=dict(_irn_trunk, _delete_=True), data_preprocessor=_norm)),
    }


moana_pretrained_stages = dict(
    moana_pretrain=dict(type='Pretrain', before='base_classify', backbone=resnet50_standin,
                        corpus=dict(type='ShapeCorpus', generator=dict(image_size=64)),
                        max_epochs=9, batch_size=64),
    **_arm_overrides('base'), **_arm_overrides('moana'))
