"""The ``amp`` switch of the training stages (mmengine AmpOptimWrapper on CUDA only)."""
import pytest

from wsss_core.pipeline.mixed_precision import (amp_enabled, check_amp,
                                                mixed_precision_optim_wrapper)
from wsss_core.pipeline.stage import StageContext, StageError
from wsss_core.pipeline.train_classifier import TrainClassifier

SGD = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1),
           constructor='SomeConstructor', accumulative_counts=2)
MODEL = dict(type='CAMClassifier', backbone=dict(type='SmallResNet'))


def test_auto_is_fp32_on_cpu_and_amp_on_cuda():
    assert mixed_precision_optim_wrapper('s', SGD, 'auto', 'cpu') == SGD
    got = mixed_precision_optim_wrapper('s', SGD, 'auto', 'cuda:0', 'bfloat16')
    assert got['type'] == 'AmpOptimWrapper' and got['dtype'] == 'bfloat16'
    # the optimiser, constructor and accumulation are kept; nothing else is added for bf16
    assert {k: v for k, v in got.items() if k not in ('type', 'dtype')} == \
        {k: v for k, v in SGD.items() if k != 'type'}
    fp16 = mixed_precision_optim_wrapper('s', SGD, True, 'cuda', 'float16')
    assert fp16['dtype'] == 'float16' and fp16['loss_scale'] == 'dynamic'
    assert mixed_precision_optim_wrapper('s', SGD, False, 'cuda') == SGD


def test_amp_true_without_cuda_and_bad_values_are_clear_errors(core_registered):
    with pytest.raises(StageError, match="amp='auto'"):
        amp_enabled('train', True, 'cpu')
    with pytest.raises(StageError, match='amp must be'):
        check_amp('train', 'yes')
    with pytest.raises(StageError, match='amp_dtype'):
        check_amp('train', 'auto', 'fp8')
    with pytest.raises(StageError, match='neither'):
        mixed_precision_optim_wrapper('s', dict(SGD, type='Custom'), True, 'cuda')
    with pytest.raises(StageError, match='amp must be'):
        TrainClassifier('c', model=MODEL, amp='on')


def test_training_stage_applies_its_amp_option(tmp_path, core_registered):
    stage = TrainClassifier('c', model=MODEL, amp='auto', amp_dtype='float16')
    ctx = StageContext(cfg={}, work_dir=tmp_path, stage_dir=tmp_path / 'c', device='cuda')
    assert stage.optim_wrapper_for_device(ctx, SGD)['type'] == 'AmpOptimWrapper'
    ctx.device = 'cpu'
    assert stage.optim_wrapper_for_device(ctx, SGD)['type'] == 'OptimWrapper'
    # without the option nothing changes, and the option is not in the hashed options
    plain = TrainClassifier('c', model=MODEL)
    assert 'amp' not in plain.hashed_options()
    ctx.device = 'cuda'
    assert plain.optim_wrapper_for_device(ctx, SGD) == SGD


def test_compile_option_compiles_the_model_forward(tmp_path, tiny_data_cfg):
    """``compile=`` wraps the built model's forward in torch.compile (the 'eager' backend:
    no code generation, so the test stays fast); the stage trains through it and the weights
    equal an uncompiled run's (the eager backend runs the same ops)."""
    import torch
    from mmengine.config import Config
    from wsss_core.pipeline import Pipeline
    from wsss_core.testing import tiny_pipeline_cfg

    calls = []
    real_compile = torch.compile

    def spy(fn, **options):
        calls.append(options)
        return real_compile(fn, **options)

    def run(work_dir, **options):
        cfg = tiny_pipeline_cfg(tiny_data_cfg)
        cfg['stages'] = cfg['stages'][:1]
        cfg['stages'][0].update(val_split=None, **options)
        Pipeline(Config(cfg), work_dir, progress=False).run()
        return torch.load(work_dir / 'classify' / 'model.pth', weights_only=True)

    torch.compile = spy
    try:
        on = run(tmp_path / 'on', compile=dict(backend='eager'))
        assert calls == [dict(backend='eager')]
        off = run(tmp_path / 'off')
        assert len(calls) == 1
    finally:
        torch.compile = real_compile
    assert on.keys() == off.keys()
    for key in on:
        torch.testing.assert_close(on[key], off[key], rtol=1e-5, atol=1e-6)
    ctx = StageContext(cfg={}, work_dir=tmp_path, stage_dir=tmp_path / 'c')
    model = TrainClassifier('c', model=MODEL, compile=dict(backend='eager')).build_model(
        ctx, dict(MODEL, num_classes=3))
    assert hasattr(model.forward, '_torchdynamo_orig_callable')
    with pytest.raises(StageError, match='compile must be'):
        TrainClassifier('c', model=MODEL, compile='yes').build_model(ctx, dict(MODEL,
                                                                               num_classes=3))
