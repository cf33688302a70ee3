"""Build errors name the config key, the component and the bad option (issue 20.1)."""
from __future__ import annotations

import contextlib
import io

import pytest

from wsss_core.components import register_core_components
from wsss_core.config import load_config
from wsss_core.config_errors import (ConfigBuildError, ConfigValueError, StageKey,
                                     accepted_options, add_base_config_hint, config_key,
                                     signature_problems)
from wsss_core.datasets import build_dataset
from wsss_core import registry
from wsss_core.registry import LABEL_REFINERS, MODELS, UnknownComponentError, build
from wsss_core.testing import tiny_classify_stage

register_core_components()


# --- components for the tests (unique names in the core's refiner registry) -----------------
@LABEL_REFINERS.register_module(force=True)
class _CfgErrInner:
    def __init__(self, size: int, scale: float = 1.0):
        self.size, self.scale = size, scale


@LABEL_REFINERS.register_module(force=True)
class _CfgErrOuter:
    """Builds its part with mmengine's registry directly (no signature check on the way)."""

    def __init__(self, part: dict):
        self.part = LABEL_REFINERS.build(part)


class _CfgErrBase:
    def __init__(self, size: int, mode: str = 'a'):
        self.size, self.mode = size, mode


@LABEL_REFINERS.register_module(force=True)
class _CfgErrForwarding(_CfgErrBase):
    def __init__(self, extra: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.extra = extra


@LABEL_REFINERS.register_module(force=True)
class _CfgErrBroken:
    def __init__(self, size: int):
        raise TypeError('a TypeError from inside the component, not about its options')


# --- the signature rule --------------------------------------------------------------------
def test_signature_problems_follow_the_rule():
    def fn(a, b=1, *, c):
        pass

    def open_fn(a, **kwargs):
        pass

    assert signature_problems(fn, ['a', 'c']) is None
    assert signature_problems(fn, ['a', 'c', 'x', 'y']) == ('unexpected', ['x', 'y'])
    assert signature_problems(fn, ['b']) == ('missing', ['a', 'c'])
    assert signature_problems(open_fn, ['a', 'anything']) is None      # **kwargs takes it
    assert signature_problems(open_fn, ['anything']) == ('missing', ['a'])


def test_accepted_options_follow_kwargs_to_the_base():
    assert accepted_options(_CfgErrInner) == ['size', 'scale']
    assert accepted_options(_CfgErrForwarding) == ['extra', 'size', 'mode']


# --- registry.build ------------------------------------------------------------------------
def test_build_names_component_registry_option_and_options():
    with pytest.raises(ConfigBuildError) as info:
        build(dict(type='_CfgErrInner', size=3, sise=4), LABEL_REFINERS)
    err = info.value
    assert isinstance(err, TypeError)       # still what Python raises for a bad keyword
    assert (err.component, err.problem, err.options) == ('_CfgErrInner', 'unexpected', ('sise',))
    assert str(err) == ("the label refiner '_CfgErrInner' does not take the option 'sise' "
                        "('sise' -> did you mean 'size'?) (its options: size, scale).")


def test_build_names_a_missing_option():
    with pytest.raises(ConfigBuildError, match="'_CfgErrInner' needs the option 'size'"):
        build(dict(type='_CfgErrInner', scale=2.0), LABEL_REFINERS)


def test_option_passed_on_through_kwargs_is_named_for_the_configured_type():
    with pytest.raises(ConfigBuildError) as info:
        build(dict(type='_CfgErrForwarding', size=1, bogus=2), LABEL_REFINERS)
    assert info.value.component == '_CfgErrForwarding' and info.value.options == ('bogus',)
    assert info.value.accepted == ('extra', 'size', 'mode')


def test_a_typeerror_from_inside_a_component_is_left_alone():
    with pytest.raises(TypeError) as info:
        build(dict(type='_CfgErrBroken', size=1), LABEL_REFINERS)
    assert not isinstance(info.value, ConfigBuildError)


# --- key paths -----------------------------------------------------------------------------
def test_key_path_of_a_nested_component_by_stage_index_and_name():
    stage = dict(type='RefineLabels', name='labels', cams='cams',
                 refiners=[dict(type='_CfgErrInner', size=1), dict(type='_CfgErrInner', size=2,
                                                                   bogus=True)])
    with pytest.raises(ConfigBuildError) as info:
        with config_key('stages', StageKey(3, 'labels'), cfg=stage, fallback=True):
            [build(r, LABEL_REFINERS) for r in stage['refiners']]
    assert info.value.key_path == "stages.labels.refiners.1"
    assert str(info.value).startswith(
        "config key `stages.labels.refiners.1`: the label refiner '_CfgErrInner' "
        "does not take the option 'bogus'")
    assert info.value.raw_path == ['stages', 3, 'refiners', 1]


def test_a_stage_named_by_name_only():
    with pytest.raises(ConfigBuildError) as info:
        with config_key('stages', StageKey(name='labels'), cfg=dict(part=dict(
                type='_CfgErrInner', size=1, x=1))):
            build(dict(type='_CfgErrInner', size=1, x=1), LABEL_REFINERS)
    assert info.value.key_path == 'stages.labels.part'


def test_key_path_of_a_part_built_by_mmengine_directly():
    stage = dict(type='X', name='s', outer=dict(type='_CfgErrOuter', part=dict(
        type='_CfgErrInner', size=1, colour='red')))
    with pytest.raises(ConfigBuildError) as info:
        with config_key('stages', StageKey(0, 's'), cfg=stage):
            build(stage['outer'], LABEL_REFINERS)
    assert info.value.key_path == "stages.s.outer.part"
    assert info.value.component == '_CfgErrInner' and info.value.options == ('colour',)


def test_a_model_backbone_option_is_placed_under_the_stage_model():
    stage = dict(type='TrainClassifier', name='classify',
                 model=dict(type='CAMClassifier', backbone=dict(type='SmallResNet', depth=3)))
    with pytest.raises(ConfigBuildError) as info:
        with config_key('stages', StageKey(0, 'classify'), cfg=stage):
            build(dict(stage['model'], num_classes=3), MODELS)
    assert info.value.key_path == "stages.classify.model.backbone"
    assert "the model 'SmallResNet' does not take the option 'depth'" in str(info.value)


def test_an_error_not_in_the_dict_is_left_for_an_outer_key_or_placed_under_fallback():
    with pytest.raises(ConfigBuildError) as info:
        with config_key('stages', StageKey(1, 'b'), cfg=dict(type='Y'), fallback=True):
            with config_key('data', cfg=dict(type='SyntheticShapes')):
                build(dict(type='_CfgErrInner', size=1, q=2), LABEL_REFINERS)
    assert info.value.within and info.value.key_path == "stages.b"
    assert "(built while building config key `stages.b`)" in str(info.value)


def test_unknown_type_gets_its_key_path():
    with pytest.raises(UnknownComponentError) as info:
        with config_key('stages', StageKey(2, 'cams'), cfg=dict(refiners=[dict(type='Nope')])):
            build(dict(type='Nope'), LABEL_REFINERS)
    assert str(info.value).startswith("config key `stages.cams.refiners.0`: unknown "
                                      "type 'Nope'")


def test_dataset_option_is_named_under_data():
    with pytest.raises(ConfigBuildError) as info:
        build_dataset(dict(type='SyntheticShapes', generater=dict(num_train=4)), split='train')
    assert info.value.key_path == 'data' and info.value.options == ('generater',)


def test_pipeline_names_the_stage_that_cannot_be_built(tmp_path):
    from mmengine.config import Config

    from wsss_core.pipeline.pipeline import Pipeline
    cfg = Config(dict(data=dict(type='SyntheticShapes'), stages=[
        dict(type='RefineLabels', name='labels')]))
    with pytest.raises(ConfigBuildError) as info:
        Pipeline(cfg, tmp_path, device='cpu')
    assert info.value.key_path == "stages.labels"
    assert "the stage 'RefineLabels' needs the option 'cams'" in str(info.value)


def test_pipeline_checks_the_data_options_before_any_stage(tmp_path):
    from mmengine.config import Config

    from wsss_core.pipeline.pipeline import Pipeline
    cfg = Config(dict(data=dict(type='SyntheticShapes', generater=dict(num_train=4)),
                      stages=[tiny_classify_stage()]))
    with pytest.raises(ConfigBuildError) as info:
        Pipeline(cfg, tmp_path, device='cpu')
    assert info.value.key_path == 'data' and info.value.options == ('generater',)
    assert not (tmp_path / 'classify').exists()


@pytest.mark.parametrize('generator, message', [
    (dict(num_classes=10), 'num_classes must lie in 2..8, got 10'),
    (dict(num_trian=4), "unknown SyntheticShapes option(s) ['num_trian']")])
def test_pipeline_checks_the_data_generator_values_before_any_stage(tmp_path, generator,
                                                                    message):
    """A generator knob the generator refuses stops the run when the pipeline is built, not
    when the data is first generated (after the stages before, a pretraining say)."""
    from mmengine.config import Config

    from wsss_core.pipeline.pipeline import Pipeline
    cfg = Config(dict(data=dict(type='SyntheticShapes', generator=generator),
                      stages=[tiny_classify_stage()]))
    with pytest.raises(ConfigValueError) as info:
        Pipeline(cfg, tmp_path, device='cpu')
    assert str(info.value).startswith('config key `data` (SyntheticShapes): ')
    assert message in str(info.value) and info.value.key_path == 'data'
    assert not (tmp_path / 'classify').exists()


def test_a_pretrain_stage_checks_its_corpus_values_when_built():
    from wsss_core.pipeline.pretrain import Pretrain
    with pytest.raises(ConfigValueError,
                       match=r'^config key `stages\.p\.corpus` \(ShapeCorpus\): .*num_classes'):
        Pretrain('p', backbone=dict(type='SmallResNet'),
                 corpus=dict(generator=dict(num_classes=100000)))
    Pretrain('p', backbone=dict(type='SmallResNet'), corpus=dict(generator=dict(num_classes=8)))


# --- _base_ configs ------------------------------------------------------------------------
def _write(path, text):
    path.write_text(text)
    return str(path)


def test_option_from_a_base_config_suggests_delete(tmp_path):
    _write(tmp_path / 'base.py', "data = dict(type='SyntheticShapes', "
                                 "generator=dict(num_train=4))\nstages = []\n")
    child = _write(tmp_path / 'child.py', "_base_ = ['./base.py']\n"
                                          "data = dict(type='VOC2012', data_root='/nowhere')\n")
    cfg = load_config(child)
    assert cfg.data.generator == dict(num_train=4)      # mmengine merged the base's option
    with pytest.raises(ConfigBuildError) as info:
        build_dataset(cfg.data.to_dict(), split='train')
    add_base_config_hint(info.value, cfg)
    hint = info.value.hint
    assert '`data.generator` comes from the base config ./base.py' in hint
    assert "data = dict(_delete_=True, type='VOC2012', ...)" in hint
    # the advice works: with _delete_ the base's option is gone
    fixed = _write(tmp_path / 'fixed.py', "_base_ = ['./base.py']\ndata = dict(_delete_=True, "
                                          "type='VOC2012', data_root='/nowhere')\n")
    assert 'generator' not in load_config(fixed).data


def test_option_written_in_the_child_gets_no_base_hint(tmp_path):
    _write(tmp_path / 'base.py', "data = dict(type='SyntheticShapes')\nstages = []\n")
    child = _write(tmp_path / 'child.py', "_base_ = ['./base.py']\n"
                                          "data = dict(type='VOC2012', generator=1)\n")
    cfg = load_config(child)
    with pytest.raises(ConfigBuildError) as info:
        build_dataset(cfg.data.to_dict(), split='train')
    add_base_config_hint(info.value, cfg)
    assert info.value.hint is None


# --- wsss-run ------------------------------------------------------------------------------
@pytest.fixture
def wsss_run():
    """``wsss-run ARGS`` in this process: (exit status, stdout, stderr).  Captured in buffers
    that stay open: the loggers a run makes keep their streams after it.  The configs load
    the core only (``plugins = ['core']``): the plugins' registrations would outlive the test."""
    from wsss_core import cli, console

    def run(*args):
        out, err = io.StringIO(), io.StringIO()
        provider = registry._provider_lookup      # plugin loading installs its own
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = cli.main(list(args))
        finally:
            console.reset()
            registry.set_provider_lookup(provider)
        return status, out.getvalue(), err.getvalue()
    return run


@pytest.mark.parametrize('debug', [False, True])
def test_wsss_run_prints_one_paragraph_for_the_base_example(tmp_path, wsss_run, debug):
    config = _write(tmp_path / 'voc.py', "_base_ = ['core::quickstart.py']\nplugins = ['core']\n"
                                         f"data = dict(type='VOC2012', data_root='{tmp_path}')\n")
    work = tmp_path / 'work'
    status, _, err = wsss_run(config, '--work-dir', str(work), '--no-progress',
                              *(['--debug'] if debug else []))
    assert status == 2, err[-3000:]
    message = [line for line in err.splitlines() if line.startswith('wsss-run:')]
    assert len(message) == 1
    assert message[0].startswith("wsss-run: config key `data`: the dataset 'VOC2012' does not "
                                 "take the option 'generator'")    # before any stage runs
    for part in ('core::quickstart.py', '_delete_=True'):
        assert part in message[0]
    assert 'starts' not in err
    assert ('Traceback' in err) == debug
    assert 'Traceback' in (work / 'wsss-run.log').read_text()


def test_wsss_run_reports_a_refused_data_value_as_a_config_error(tmp_path, wsss_run):
    config = _write(tmp_path / 'bad.py', "_base_ = ['core::quickstart.py']\nplugins = ['core']\n"
                                         "data = dict(generator=dict(num_classes=10))\n")
    status, _, err = wsss_run(config, '--work-dir', str(tmp_path / 'work'), '--no-progress')
    assert status == 2, err[-3000:]
    message = [line for line in err.splitlines() if line.startswith('wsss-run:')]
    assert message == ['wsss-run: config key `data` (SyntheticShapes): num_classes must lie '
                       'in 2..8, got 10']
    assert 'starts' not in err


def test_wsss_run_names_a_misspelt_item_in_one_line(tmp_path, wsss_run):
    config = _write(tmp_path / 'item.py', "_base_ = ['core::quickstart.py']\nplugins = ['core']\n"
                                          "data = dict(_delete_=True, type='VOC2012', "
                                          "data_root='item:voc12-ag')\n")
    status, _, err = wsss_run(config, '--work-dir', str(tmp_path / 'work'), '--no-progress')
    assert status == 2, err[-3000:]
    assert 'Traceback' not in err
    message = [line for line in err.splitlines() if line.startswith('wsss-run:')]
    assert len(message) == 1, err[-3000:]
    assert "data.data_root = 'item:voc12-ag'" in message[0] and 'voc12-aug' in message[0]


def test_wsss_run_names_a_misspelt_stage_in_cfg_options(tmp_path, wsss_run):
    status, _, err = wsss_run('core::quickstart.py', '--work-dir', str(tmp_path / 'work'),
                              '--no-progress', '--cfg-options', 'stages.clasify.max_epochs=3')
    assert status == 2, err[-3000:]
    message = [line for line in err.splitlines() if line.startswith('wsss-run:')]
    assert len(message) == 1 and "no stage is named 'clasify'; did you mean 'classify'?" \
        in message[0], err[-3000:]
    assert not (tmp_path / 'work').exists()


def test_wsss_run_names_a_misspelt_stage_in_stages_before_running_any(tmp_path, wsss_run):
    status, _, err = wsss_run('core::quickstart.py', '--work-dir', str(tmp_path / 'work'),
                              '--no-progress', '--stages', 'clasify')
    assert status == 2, err[-3000:]
    message = [line for line in err.splitlines() if line.startswith('wsss-run:')]
    assert len(message) == 1 and "unknown stage(s) ['clasify'] (did you mean 'classify'?)" \
        in message[0], err[-3000:]
    assert not (tmp_path / 'work' / 'classify').exists()
