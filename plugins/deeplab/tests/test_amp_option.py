"""TrainSegmentor's ``amp`` option: hashed only when set, applied on CUDA only."""
from wsss_core.pipeline.stage import StageContext
from wsss_deeplab.stages.train_segmentor import TrainSegmentor
from wsss_deeplab.testing import registered  # noqa: F401 (fixture)


def test_train_segmentor_amp_option(tmp_path, registered):
    plain = TrainSegmentor('seg', recipe='synthetic')
    assert 'amp' not in plain.options and 'amp_dtype' not in plain.options
    stage = TrainSegmentor('seg', recipe='synthetic', amp='auto')
    assert stage.options['amp'] == 'auto'
    ctx = StageContext(cfg={}, work_dir=tmp_path, stage_dir=tmp_path / 'seg', device='cuda:0')
    optim = stage.optim_wrapper_for_device(ctx, dict(type='OptimWrapper', optimizer=dict(
        type='SGD', lr=1e-3)))
    assert optim['type'] == 'AmpOptimWrapper'
    ctx.device = 'cpu'
    assert stage.optim_wrapper_for_device(ctx, optim | dict(type='OptimWrapper'))['type'] == \
        'OptimWrapper'
