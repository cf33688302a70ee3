"""``channels_last=True`` on TrainSegmentor / TestSegmentor: NHWC weights and NHWC input at
the first convolution, scores equal to the default layout's within float tolerance, and the
option in the config hash only when set."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from mmengine.config import Config

from wsss_core.pipeline.manifest import write_manifest
from wsss_core.pipeline.memory_format import to_channels_last
from wsss_core.pipeline.stage import StageContext, StageError

from wsss_core.pipeline.segmentor_postprocess import load_logits
from wsss_core.pipeline.segmentor_inference import TestSegmentor
from wsss_core.pipeline.train_segmentor import TrainSegmentor
from wsss_deeplab.testing import TINY_BACKBONE, TINY_GENERATOR, registered, tiny_v2  # noqa: F401

NHWC = torch.channels_last
MODEL = dict(type='DeepLabV2', backbone=dict(TINY_BACKBONE))


def watch_first_conv(model, log: list):
    """Record (input is NHWC, weight is NHWC) at every call of the backbone's first conv."""
    conv = model.backbone.conv1
    return conv.register_forward_pre_hook(lambda m, args: log.append(
        (args[0].is_contiguous(memory_format=NHWC), m.weight.is_contiguous(memory_format=NHWC))))


@pytest.mark.parametrize('input_style', ['imagenet', 'caffe'])
def test_model_weights_and_inputs_become_nhwc_with_the_same_scores(registered, input_style):
    ref = tiny_v2(input_style=input_style).eval()
    nhwc = to_channels_last(copy.deepcopy(ref), 'demo')
    img = torch.randint(0, 256, (2, 3, 41, 41), dtype=torch.uint8)
    outputs, logs = [], []
    for model in (ref, nhwc):
        log = []
        handle = watch_first_conv(model, log)
        with torch.no_grad():
            outputs.append(model.fused_logits(model.data_preprocessor(dict(img=img))['img']))
        handle.remove()
        logs.append(set(log))
    assert logs == [{(False, False)}, {(True, True)}]   # every MSC scale's call, both models
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=1e-4)


def test_the_option_is_hashed_only_when_set(registered):
    plain = TrainSegmentor('s', model=MODEL)
    assert 'channels_last' not in plain.hashed_options()
    assert TrainSegmentor('s', model=MODEL, channels_last=False).hashed_options() == \
        plain.hashed_options()
    assert TrainSegmentor('s', model=MODEL, channels_last=True).hashed_options() == \
        dict(plain.hashed_options(), channels_last=True)
    test = TestSegmentor('t', checkpoint='s')
    assert 'channels_last' not in test.hashed_options()
    assert TestSegmentor('t', checkpoint='s', channels_last=True).hashed_options() == \
        dict(test.hashed_options(), channels_last=True)
    with pytest.raises(StageError, match=r'\[s\] channels_last must be True or False'):
        TrainSegmentor('s', model=MODEL, channels_last='yes')
    with pytest.raises(StageError, match=r'\[t\] channels_last must be True or False'):
        TestSegmentor('t', checkpoint='s', channels_last=1)


class WatchedTrainSegmentor(TrainSegmentor):
    """Records what the first conv sees during training."""
    def build_model(self, ctx, model_cfg):
        model = super().build_model(ctx, model_cfg)
        self.log = []
        watch_first_conv(model, self.log)
        return model


class WatchedTestSegmentor(TestSegmentor):
    """Records what the first conv sees during inference."""
    __test__ = False

    def process(self, ctx, index):
        if not hasattr(self, 'log'):
            self.log = []
            watch_first_conv(self.model, self.log)
        super().process(ctx, index)


def test_stages_train_and_predict_in_nhwc_with_the_same_scores(registered, tmp_path):
    cfg = Config(dict(seed=0, data=dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR),
                                        progress=False)))

    def context(stage):
        return StageContext(cfg=cfg, work_dir=tmp_path, stage_dir=tmp_path / stage.name,
                            progress=False, seed=0)

    train = WatchedTrainSegmentor('deeplab', model=MODEL, labels=None, max_iters=1,
                                  batch_size=2, crop_size=41, log_interval=1,
                                  checkpoint_interval=1, channels_last=True)
    record = train.run(context(train))
    assert train.log and set(train.log) == {(True, True)}
    assert np.isfinite(record['metrics']['final_loss'])
    write_manifest(tmp_path / 'deeplab', record)

    scores = {}
    for name, flag in (('plain', False), ('nhwc', True)):
        stage = WatchedTestSegmentor(name, checkpoint='deeplab', split='val', flip=True,
                                     max_samples=3, channels_last=flag)
        stage.run(context(stage))
        assert set(stage.log) == {(flag, flag)}
        scores[name] = {p.stem: load_logits(p) for p in (tmp_path / name / 'logits').glob('*')}
    assert len(scores['plain']) == 3 and scores['plain'].keys() == scores['nhwc'].keys()
    for key, want in scores['plain'].items():   # stored as float16: compare at its precision
        np.testing.assert_allclose(scores['nhwc'][key], want, rtol=2e-3, atol=2e-3)
