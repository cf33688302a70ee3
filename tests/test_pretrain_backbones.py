"""Every stand-in backbone of the issue (SmallResNet, VGG16 with OAA's strides, ResNet-38,
ResNet-50 with the IRN strides, a ViT and a hybrid ViT, each narrowed) trains under the
Pretrain stage's classifier, and the weights it would cache come back bit for bit through
the option its class names (``pretrained=`` or ``checkpoint=``)."""
from __future__ import annotations

import pytest
import torch

TINY_HYBRID = dict(layers=(1, 1, 1), channels=(8, 16, 32), stem_chs=8, num_groups=4)
STANDINS = {
    'small_resnet': dict(type='SmallResNet', widths=(4, 8, 8, 8)),
    'vgg16_oaa': dict(type='VGG16OAA', width_mult=1 / 16),
    'resnet38': dict(type='ResNet38', width_mult=1 / 32),
    'resnet50_irn': dict(type='TorchvisionResNet', depth=50, output_stride=16,
                         width_mult=1 / 16),
    'vit': dict(type='GETAMViT', model_name='vit_tiny_patch16_224', img_size=32,
                embed_dim=16, depth=2, num_heads=2),
    'vit_hybrid': dict(type='GETAMViT', model_name='vit_base_r50_s16_384', img_size=32,
                       embed_dim=16, depth=2, num_heads=2, hybrid_resnet=TINY_HYBRID),
}


@pytest.fixture(scope='module')
def plugins():
    from wsss_core.plugin_loader import load_plugins
    load_plugins()


@pytest.mark.parametrize('name', sorted(STANDINS))
def test_standin_trains_and_its_weights_come_back(name, plugins, tmp_path):
    from wsss_core.models.weights import pretrained_option, pretrained_state_dict
    from wsss_core.registry import MODELS, build, lookup
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = STANDINS[name]
    model = build(dict(type='PretrainClassifier', backbone=dict(cfg), num_classes=5), MODELS)
    img = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    data = model.data_preprocessor(dict(img=img, labels=torch.eye(5)[[1, 3]]), training=True)
    loss = model(data['img'], data['labels'], mode='loss')['loss_cls']
    loss.backward()
    assert torch.isfinite(loss) and model.head.weight.grad.abs().sum() > 0
    path = tmp_path / 'weights.pth'
    torch.save(pretrained_state_dict(model.backbone), path)
    option = pretrained_option(lookup(MODELS, cfg['type']))
    torch.manual_seed(1)                       # another init: only the file can make them equal
    loaded = build(dict(cfg, **{option: str(path)}), MODELS)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
