# GETAM on PASCAL VOC 2012 with the ViT-B/16 backbone (timm tag
# vit_base_patch16_384.orig_in21k_ft_in1k; reported 68.1 val / 68.8 test mIoU): everything as
# getam::voc12_vitb_hybrid.py but the encoder (spec 2.2: hook blocks 2, 5, 8, 11).
_base_ = ['./voc12_vitb_hybrid.py']
work_dir = 'work_dirs/getam_voc12_vitb'

backbone = dict(type='GETAMViT', model_name='vitb', pretrained=True)
model = dict(type='GETAMNet', num_classes=20, backbone=backbone, features=256,
             test_sizes=(256, 320, 480))

stages = [
    dict(type='TrainGETAM', name='getam', model=model, train_split='train_aug', max_epochs=20,
         batch_size=4, crop=256, long_side=(230, 292), lr=0.04, weight_decay=5e-4,
         reference_optimizer=False, cls_fraction=0.5, seg_lr_scale=0.1, power=0.9,
         num_workers=4, log_interval=100),
    dict(type='TestSegmentor', name='test', checkpoint='getam', split='val', workers=8,
         crf=dict(type='DenseCRF', preset='getam', image='raw_rgb')),
]
