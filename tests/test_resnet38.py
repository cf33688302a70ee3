"""ResNet-38 (psa ``resnet38d``): shapes, widths, dilations, freezing, weights.

The network is described in ``docs/methods/edam.md#3-backbone-resnet-38``.

Full-width models are built on the meta device (no memory, no init time); forward passes use
``width_mult=1/16`` (4096 -> 256 channels).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import wsss_core.models.resnet38  # noqa: F401  (registers ResNet38 until the core lists it)
from wsss_core.io import DataFileError
from wsss_core.registry import MODELS, build

TINY = 1 / 16

# The block table of docs/methods/edam.md §3, written out again here: (name, kind, in, mid,
# out, stride, dilation of the first 3x3, dilation of the second 3x3 / of the bottleneck's 3x3).
SPEC = [('b2', 'basic', 64, 128, 128, 2, 1, 1)]
SPEC += [(f'b2_{i}', 'basic', 128, 128, 128, 1, 1, 1) for i in (1, 2)]
SPEC += [('b3', 'basic', 128, 256, 256, 2, 1, 1)]
SPEC += [(f'b3_{i}', 'basic', 256, 256, 256, 1, 1, 1) for i in (1, 2)]
SPEC += [('b4', 'basic', 256, 512, 512, 2, 1, 1)]
SPEC += [(f'b4_{i}', 'basic', 512, 512, 512, 1, 1, 1) for i in range(1, 6)]
SPEC += [('b5', 'basic', 512, 512, 1024, 1, 1, 2)]
SPEC += [(f'b5_{i}', 'basic', 1024, 512, 1024, 1, 2, 2) for i in (1, 2)]
SPEC += [('b6', 'bottleneck', 1024, None, 2048, 1, 4, 4),
         ('b7', 'bottleneck', 2048, None, 4096, 1, 4, 4)]


def _build(**kwargs):
    return build(dict(type='ResNet38', **kwargs), MODELS)


def _full_width(**kwargs):
    with torch.device('meta'):
        return _build(**kwargs)


def _spec_parameter_count() -> int:
    """Conv weights k*k*cin*cout plus 2*C per BatchNorm, from the ``SPEC`` table by hand."""
    bn = lambda c: 2 * c  # noqa: E731
    total = 3 * 3 * 3 * 64 + bn(4096)                  # conv1a, bn7
    for _, kind, cin, mid, cout, stride, _, _ in SPEC:
        if kind == 'basic':
            total += bn(cin) + 9 * cin * mid + bn(mid) + 9 * mid * cout
            if cin != cout or stride != 1:
                total += cin * cout                      # 1x1 shortcut
        else:
            q, h = cout // 4, cout // 2
            total += bn(cin) + cin * q + bn(q) + 9 * q * h + bn(h) + h * cout + cin * cout
    return total


def _psa_key_names() -> set:
    """The psa ``resnet38d`` parameter/buffer names implied by the ``SPEC`` table."""
    stats = ('weight', 'bias', 'running_mean', 'running_var')
    bn = lambda p: {f'{p}.{s}' for s in stats}  # noqa: E731
    keys = {'conv1a.weight'} | bn('bn7')
    for name, kind, cin, _, cout, stride, _, _ in SPEC:
        keys |= bn(f'{name}.bn_branch2a') | bn(f'{name}.bn_branch2b1')
        keys |= {f'{name}.conv_branch2a.weight', f'{name}.conv_branch2b1.weight'}
        if kind == 'bottleneck':
            keys |= bn(f'{name}.bn_branch2b2') | {f'{name}.conv_branch2b2.weight'}
        if kind == 'bottleneck' or cin != cout or stride != 1:
            keys.add(f'{name}.conv_branch1.weight')
    return keys


def _psa_state(model) -> dict:
    """The model's weights as an old psa file holds them (no ``num_batches_tracked``)."""
    return {k: v.clone() for k, v in model.state_dict().items()
            if not k.endswith('num_batches_tracked')}


def _randomise_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_output_shape_for_a_368_crop(core_registered):
    net = _build(width_mult=TINY).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 368, 368))
    assert out.shape == (1, 256, 46, 46)
    assert net.out_channels == 256 and net.output_stride == 8
    full = _full_width()
    assert full.out_channels == 4096 and full.output_stride == 8
    assert full.bn7.num_features == 4096


def test_full_width_parameter_count_matches_the_block_table(core_registered):
    net = _full_width()
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == _spec_parameter_count() == 105_070_912   # ~105 M, psa's ResNet-38 trunk
    n_conv = sum(p.numel() for n, p in net.named_parameters() if '.bn' not in n and 'bn7' not in n)
    assert n_conv == 105_023_168
    # width_mult scales every width consistently
    tiny = _build(width_mult=TINY)
    assert tiny.b6.conv_branch2a.out_channels == 2048 // 4 // 16
    assert tiny.b7.conv_branch2b1.out_channels == 4096 // 2 // 16
    with pytest.raises(ValueError, match='width_mult'):
        _build(width_mult=0.3)


def test_psa_parameter_names(core_registered):
    keys = set(_psa_state(_full_width()))
    assert keys == _psa_key_names()
    assert 'b2_1.conv_branch1.weight' not in keys and 'b5_1.conv_branch1.weight' not in keys


def test_strides_and_dilations(core_registered):
    net = _full_width()
    for name, kind, _, _, _, stride, d1, d2 in SPEC:
        block = getattr(net, name)
        if kind == 'basic':
            assert block.conv_branch2a.kernel_size == (3, 3)
            assert block.conv_branch2a.stride == (stride, stride)
            assert block.conv_branch2a.dilation == block.conv_branch2a.padding == (d1, d1)
            assert block.conv_branch2b1.stride == (1, 1)
            assert block.conv_branch2b1.dilation == block.conv_branch2b1.padding == (d2, d2)
        else:
            assert block.conv_branch2a.kernel_size == block.conv_branch2b2.kernel_size == (1, 1)
            assert block.conv_branch2b1.kernel_size == (3, 3)
            assert block.conv_branch2b1.dilation == block.conv_branch2b1.padding == (4, 4)
        if hasattr(block, 'conv_branch1'):
            assert block.conv_branch1.kernel_size == (1, 1)
            assert block.conv_branch1.stride == (stride, stride)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    assert [m.p for m in net.b6.modules() if isinstance(m, nn.Dropout2d)] == [0.3, 0.3]
    assert [m.p for m in net.b7.modules() if isinstance(m, nn.Dropout2d)] == [0.5, 0.5]
    no_drop = _full_width(dropout=False)
    assert not any(isinstance(m, nn.Dropout2d) for m in no_drop.modules())


def test_frozen_stages_and_frozen_batch_norm_parameters(core_registered):
    net = _full_width()
    frozen = ('conv1a', 'b2', 'b2_1', 'b2_2')
    for name, p in net.named_parameters():
        is_bn = '.bn' in name or name.startswith('bn7')
        expect = not is_bn and name.split('.')[0] not in frozen
        assert p.requires_grad == expect, name
    free = _full_width(frozen_stages=(), norm_eval=False)
    assert all(p.requires_grad for p in free.parameters())
    with pytest.raises(ValueError, match='b9'):
        _full_width(frozen_stages=('b9',))


def test_batch_norm_stays_in_eval_and_statistics_do_not_change(core_registered):
    torch.manual_seed(0)
    net = _build(width_mult=TINY)
    net.train()
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(SPEC) == 17 and len(bns) == 1 + 2 * 17 + 2   # bn7, 2 per block, +1 per bottleneck
    assert not any(bn.training for bn in bns)
    assert net.training and net.b6.dropout_2b1.training
    before = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
    net(torch.randn(2, 3, 64, 64)).sum().backward()
    for bn, (mean, var) in zip(bns, before):
        assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
        assert bn.weight.grad is None
    assert net.conv1a.weight.grad is None and net.b2_2.conv_branch2b1.weight.grad is None
    assert net.b3.conv_branch2a.weight.grad is not None
    # norm_eval=False trains the statistics as usual
    moving = _build(width_mult=TINY, norm_eval=False).train()
    mean0 = moving.bn7.running_mean.clone()
    moving(torch.randn(2, 3, 32, 32))
    assert moving.bn7.training and not torch.equal(moving.bn7.running_mean, mean0)


def test_final_relu_option(core_registered):
    torch.manual_seed(0)
    psa = _build(width_mult=TINY).eval()
    edam = _build(width_mult=TINY, final_relu=False).eval()
    edam.load_state_dict(psa.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a, b = psa(x), edam(x)
    assert a.min() >= 0 and b.min() < 0
    assert torch.equal(a, b.clamp(min=0))


def test_loads_psa_named_weights_with_module_prefix_and_extra_keys(core_registered, tmp_path):
    torch.manual_seed(0)
    src = _build(width_mult=TINY).eval()
    _randomise_bn(src)
    state = {f'module.{k}': v for k, v in _psa_state(src).items()}
    state['module.fc8.weight'] = torch.randn(20, 256, 1, 1)
    path = tmp_path / 'resnet38_cls.pth'
    torch.save(state, path)
    torch.manual_seed(1)
    dst = _build(width_mult=TINY, pretrained=str(path)).eval()
    assert dst.missing_keys == []
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(src(x), dst(x))
    # the freezing survives loading
    assert not dst.conv1a.weight.requires_grad and not dst.bn7.weight.requires_grad


def test_foreign_or_misshapen_weights_raise_data_file_error(core_registered, tmp_path):
    foreign = tmp_path / 'resnet50.pth'
    torch.save({'layer1.0.conv1.weight': torch.zeros(64, 64, 1, 1),
                'fc.weight': torch.zeros(1000, 2048)}, foreign)
    with pytest.raises(DataFileError, match='resnet50.pth'):
        _build(width_mult=TINY, pretrained=str(foreign))
    wide = tmp_path / 'wide.pth'
    torch.save(_psa_state(_build(width_mult=TINY)), wide)
    with pytest.raises(DataFileError, match=r'wide\.pth.*shape'):
        _build(width_mult=1 / 32, pretrained=str(wide))


def test_missing_weight_file_is_named(core_registered, tmp_path):
    with pytest.raises(DataFileError, match='nope.params'):
        _build(width_mult=TINY, pretrained=str(tmp_path / 'nope.params'))


def test_cam_classifier_on_resnet38(core_registered):
    torch.manual_seed(0)
    model = build(dict(type='CAMClassifier', num_classes=3,
                       backbone=dict(type='ResNet38', width_mult=1 / 32, final_relu=False)),
                  MODELS)
    model.train()
    img = torch.randn(2, 3, 48, 48)
    assert model.cam_logits(img).shape == (2, 3, 6, 6)
    loss = model(img, labels=torch.tensor([[1., 0, 1], [0, 1, 0]]), mode='loss')['loss_cls']
    loss.backward()
    assert torch.isfinite(loss) and model.classifier.weight.grad is not None
    assert not model.backbone.b4.bn_branch2a.training
