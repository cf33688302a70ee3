"""TrainGETAM: the two phases, the schedule, and TestSegmentor on the trained GETAMNet."""
from __future__ import annotations

import math
import re

import pytest
import torch
from mmengine.config import Config

from wsss_getam.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)
from wsss_getam.hooks import GETAMScheduleHook, getam_lr_factor
from wsss_getam.models.vit_backbone import TINY_BACKBONES


def tiny_model(**kw):
    return dict(type='GETAMNet', backbone=dict(TINY_BACKBONES['vit']), features=16,
                joint=dict(start_layer=2, pamr=dict(num_iter=2, dilations=(1, 2))),
                test_sizes=(64, 96), **kw)


def test_schedule_switch_and_lr_follow_the_reference():
    hook = GETAMScheduleHook()
    # VOC: (10582 // 4) * 20 = 52900 steps; classification while (t - 1) < 26450
    assert hook.switch_iter(52900) == 26451
    assert getam_lr_factor(0, 100, 0.9, False, 0.1) == 1.0
    assert getam_lr_factor(60, 100, 0.9, True, 0.1) == pytest.approx(0.1 * 0.4 ** 0.9)
    assert getam_lr_factor(100, 100, 0.9, True, 0.1) == 0.0


def test_two_phase_training_then_multi_size_test(tmp_path, registered):
    from wsss_core.pipeline import Pipeline
    cfg = Config(dict(
        seed=0, data=dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR),
                          progress=False),
        stages=[dict(type='TrainGETAM', name='getam', model=tiny_model(), max_epochs=2,
                     batch_size=4, crop=64, long_side=(56, 72), log_interval=1),
                dict(type='TestSegmentor', name='test', checkpoint='getam', split='val',
                     crf=dict(type='DenseCRF', preset='getam', iterations=2))]))
    res = {r.name: r for r in Pipeline(cfg, tmp_path, progress=False).run()}
    # 16 images / 4 = 4 iterations per epoch, 8 in all: classification for t <= 4
    log = [p for p in (tmp_path / 'getam').rglob('*.log') if p.name != 'stage.log']
    text = '\n'.join(p.read_text() for p in log)       # mmengine's own log of the run
    iters = [line for line in text.splitlines() if 'Epoch(train)' in line]
    assert len(iters) == 8
    cls_only = [line for line in iters if 'loss_seg' not in line]
    joint = [line for line in iters if 'loss_seg' in line and 'loss_sal' in line
             and 'loss_dcrf' in line]
    assert len(cls_only) == math.ceil(0.5 * 8) + 1 and len(joint) == 8 - len(cls_only)
    # the logged lr is the one iteration t trained with (not t - 1's):
    # 0.04 (1 - t / 8)^0.9, a tenth of it from the switch (t = 5) on
    logged = [float(re.search(r'\blr: (\S+)', line).group(1)) for line in iters]
    want = [0.04 * (1 - t / 8) ** 0.9 * (0.1 if t >= 5 else 1.0) for t in range(8)]
    assert logged == pytest.approx(want, rel=1e-3)
    metrics = res['test'].manifest['metrics']
    assert 0.0 <= metrics['miou_crf'] <= 1.0


def test_fused_logits_average_square_resizes(registered):
    from wsss_core.registry import MODELS, build
    net = build(dict(tiny_model(), num_classes=3), MODELS).eval()
    img = torch.randn(1, 3, 40, 72)
    with torch.no_grad():
        got = net.fused_logits(img)
        want = sum(torch.nn.functional.interpolate(
            net.seg_logits(torch.nn.functional.interpolate(img, size=(s, s), mode='bilinear',
                                                           align_corners=False)),
            size=(40, 72), mode='bilinear', align_corners=False) for s in (64, 96)) / 2
    torch.testing.assert_close(got, want)
    assert got.shape == (1, 4, 40, 72)


def test_reference_optimizer_quirk_is_opt_in(registered):
    from wsss_getam.stages.train_getam import TrainGETAM
    default = TrainGETAM('g', model=tiny_model()).options['optim_wrapper']['optimizer']
    quirk = TrainGETAM('g', model=tiny_model(),
                       reference_optimizer=True).options['optim_wrapper']['optimizer']
    assert (default['momentum'], default['weight_decay']) == (0.0, 5e-4)
    assert (quirk['momentum'], quirk['weight_decay']) == (5e-4, 0.0)
