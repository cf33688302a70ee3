"""TrainSegmentor's ``amp`` option: hashed only when set, applied on CUDA only."""
from wsss_core.pipeline.stage import StageContext
from wsss_core.pipeline.recipe_fragments import fragment_stage_options
from wsss_core.pipeline.train_segmentor import TrainSegmentor
from wsss_deeplab.testing import registered  # noqa: F401 (fixture)


def test_train_segmentor_amp_option(tmp_path, registered):
    recipe = fragment_stage_options('deeplab::_recipes/synthetic.py', 'deeplab')
    plain = TrainSegmentor('seg', **recipe)
    assert 'amp' not in plain.hashed_options() and 'amp_dtype' not in plain.hashed_options()
    stage = TrainSegmentor('seg', **recipe, amp='auto')
    assert stage.options['amp'] == 'auto'
    ctx = StageContext(cfg={}, work_dir=tmp_path, stage_dir=tmp_path / 'seg', device='cuda:0')
    optim = stage.optim_wrapper_for_device(ctx, dict(type='OptimWrapper', optimizer=dict(
        type='SGD', lr=1e-3)))
    assert optim['type'] == 'AmpOptimWrapper'
    ctx.device = 'cpu'
    assert stage.optim_wrapper_for_device(ctx, optim | dict(type='OptimWrapper'))['type'] == \
        'OptimWrapper'
