"""The core's answer to ``wsss_conformance_examples()``: how the conformance suite builds
and exercises each core component (tiny configs, generated inputs)."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch

from .testing.conformance import ComponentExample
from .testing.conformance import inputs as gen_inputs
from .testing.layouts import coco_tree, tagged_tree, voc_tree, wsol_tree
from .testing.tiny import TINY_GENERATOR

TINY_RESNET = dict(type='SmallResNet', widths=(4, 4, 8, 8))
TINY_CLASSIFIER = dict(type='CAMClassifier', num_classes=3, backbone=dict(TINY_RESNET))
TINY_LEVELS = dict(type='TimmFeatureLevels', model_name='resnet18', channels=(8, 16, 32, 64))


def _images(gen):
    return (gen_inputs.image_batch(gen),)


def _irn_batch(gen):
    img = gen_inputs.image_batch(gen, 2, (32, 32))
    label = torch.randint(0, 3, (2, 32, 32), generator=gen)
    label[:, :2] = 255
    return dict(img=img, ir_label=label)


def _uint8_batch(gen):
    return dict(data=dict(img=torch.randint(0, 256, (2, 3, 16, 20), generator=gen,
                                            dtype=torch.uint8)))


@functools.lru_cache(maxsize=None)
def _saliency_root() -> str:
    from .io import save_gray_png
    from .testing.conformance.inputs import IMAGE_HW
    root = Path(tempfile.mkdtemp(prefix='wsss_conformance_saliency_'))
    import numpy as np
    sal = np.zeros(IMAGE_HW, np.uint8)
    sal[6:18, 8:24] = 255
    save_gray_png(root / 'conformance_0.png', sal)
    return str(root)


def _tiny_synthetic() -> dict:
    return dict(generator=dict(TINY_GENERATOR), progress=False, workers=0)


def _tiny_corpus() -> dict:
    return dict(generator=dict(image_size=48, num_classes=3, train_per_class=2,
                               val_per_class=1), progress=False, workers=0)


def _model_examples():
    return [
        ComponentExample('CAMClassifier', dict(num_classes=3, backbone=dict(TINY_RESNET)),
                         kind='classifier', roles=('cam_model',)),
        ComponentExample('PretrainClassifier', dict(num_classes=3, backbone=dict(TINY_RESNET)),
                         kind='classifier'),
        ComponentExample('SmallResNet', dict(widths=(4, 4, 8, 8)), kind='module',
                         inputs=_images),
        ComponentExample('TimmBackbone', dict(model_name='resnet18', output_stride=8,
                                              channels=(4, 8, 8, 16)), kind='module',
                         inputs=_images),
        ComponentExample('ResNet38', dict(width_mult=0.0625), kind='module', inputs=_images),
        ComponentExample('TorchvisionResNet', dict(depth=50, output_stride=16), kind='module',
                         inputs=lambda g: (gen_inputs.image_batch(g, 2, (32, 32)),)),
        ComponentExample('NormalizeImages', dict(), kind='module', inputs=_uint8_batch),
        ComponentExample('InterPixelRelationNet',
                         dict(backbone=dict(TINY_LEVELS), radius=3, boundary_widths=(4,) * 5,
                              displacement_widths=(4, 4, 8, 8, 8), displacement_fuse_width=8),
                         kind='module', inputs=_irn_batch,
                         built_with=lambda m, d: m(**d, mode='loss'), roles=('boundary_model',)),
        ComponentExample('TimmFeatureLevels', dict(model_name='resnet18',
                                                   channels=(8, 16, 32, 64)),
                         kind='module', inputs=_images),
    ]


def _dataset_examples():
    return [
        ComponentExample('VOCLayoutDataset', lambda: dict(data_root=str(voc_tree()),
                                                          num_classes=20)),
        ComponentExample('SyntheticShapes', _tiny_synthetic),
        ComponentExample('VOC2012', lambda: dict(data_root=str(voc_tree()))),
        ComponentExample('COCO2014', lambda: dict(data_root=str(coco_tree()))),
        ComponentExample('WSOLMetadata', lambda: dict(data_root=str(wsol_tree()), name='voc')),
        ComponentExample('SyntheticShapesWSOL', _tiny_synthetic),
        ComponentExample('TaggedImageFolder', lambda: dict(
            data_root=str(tagged_tree() / 'images'), labels=str(tagged_tree() / 'tags.csv'),
            mask_dir=str(tagged_tree() / 'masks'))),
        ComponentExample('ShapeCorpus', _tiny_corpus),
    ]


def _transform_examples():
    return [
        ComponentExample('RandomHorizontalFlip', dict(prob=0.5)),
        ComponentExample('RandomRescale', dict(scale_range=(0.5, 1.5))),
        ComponentExample('RandomPadCrop', dict(size=28, pad=2)),
        ComponentExample('RandomScaleChoice', dict(scales=(0.5, 0.75, 1.25))),
        ComponentExample('PadToSize', dict(size=40)),
        ComponentExample('PackInputs', dict(keys=('img', 'labels', 'gt_seg'))),
        ComponentExample('Resize', dict(size=(16, 20))),
        ComponentExample('RandomLongSide', dict(low=16, high=40)),
        ComponentExample('ColorJitter', dict(brightness=0.3, contrast=0.3, saturation=0.3,
                                             hue=0.1)),
        ComponentExample('MarkValidPixels'),
    ]


def _cam_examples():
    return [
        ComponentExample('CAM'),
        ComponentExample('GradCAM'),
        ComponentExample('GradCAMPlusPlus'),
        ComponentExample('LayerCAM'),
        ComponentExample('ScoreCAM', dict(mask_batch=4, top_k=4)),
        ComponentExample('GradCAMPackage', dict(method='GradCAM')),
    ]


def _refiner_examples():
    return [
        ComponentExample('BackgroundThreshold', dict(threshold=0.25)),
        ComponentExample('SaliencyFusion', dict(threshold=0.5)),
        ComponentExample('DenseCRF', dict(preset='psa')),
        ComponentExample('IRLabels', dict()),
        ComponentExample('PAMRRefiner', dict(num_iter=3, dilations=(1, 2))),
    ]


def _saliency_examples():
    return [
        ComponentExample('SaliencyFromDisk', lambda: dict(root=_saliency_root())),
        ComponentExample('SaliencyFromDataset'),
        ComponentExample('SpectralResidualSaliency'),
        ComponentExample('FineGrainedSaliency'),
    ]


def _stage_examples():
    tiny = dict(TINY_CLASSIFIER)
    return [
        ComponentExample('TrainClassifier', dict(name='classify', model=tiny)),
        ComponentExample('Pretrain', dict(name='pretrain', backbone=dict(TINY_RESNET))),
        ComponentExample('MakeCAMs', dict(name='cams', source='classify')),
        ComponentExample('RefineLabels', dict(name='labels', cams='cams')),
        ComponentExample('EvaluateLabels', dict(name='eval', labels='labels')),
        ComponentExample('EvaluateClassifier', dict(name='eval_classify', source='classify')),
        ComponentExample('RenderSheet', dict(name='sheet', cams='cams')),
        ComponentExample('TrainIRN', dict(name='irn', labels='labels')),
        ComponentExample('RandomWalkLabels', dict(name='rw', cams='cams', irn='irn')),
        # the segmenter stages: any registered model builds the stage (the networks, e.g.
        # DeepLab's, are plugins'); TestSegmentor checks the Segmenter protocol when it loads
        ComponentExample('TrainSegmentor', dict(name='seg', labels='labels', model=tiny)),
        ComponentExample('TestSegmentor', dict(name='test', checkpoint='seg')),
        ComponentExample('EvaluateWSOL', dict(name='wsol', source='classify')),
        ComponentExample('NonFiniteLossGuard', dict(stage='classify', mode='error')),
        ComponentExample('RandomStateHook'),
        ComponentExample('TrainProgressBar', dict(desc='[classify] train')),
        ComponentExample('MultiLabelMAP'),
        ComponentExample('SingleLabelAccuracy'),
        ComponentExample('WSOLMetric'),
    ]


def _stepped_poly_cfg():
    """A SGD over one parameter: what a parameter scheduler is built around."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    return dict(optimizer=optimizer, interval=10, power=0.9, begin=0, end=101, by_epoch=False)


def _optim_examples():
    return [
        ComponentExample('DeepLabOptimWrapperConstructor',
                         dict(optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=2.5e-4,
                                                                    momentum=0.9,
                                                                    weight_decay=5e-4)))),
        ComponentExample('SteppedPolyLR', _stepped_poly_cfg),
    ]


def examples():
    return [*_model_examples(), *_dataset_examples(), *_transform_examples(),
            *_cam_examples(), *_refiner_examples(), *_saliency_examples(), *_stage_examples(),
            *_optim_examples()]
