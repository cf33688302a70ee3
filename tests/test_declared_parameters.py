"""Declared parameters: the declaration walk, the canonical hash form, and the refusal of a
misspelt option by every registered stage and component."""
from __future__ import annotations

import inspect

import pytest
import torch.nn as nn
from mmengine.config import Config

from wsss_core.config_errors import ConfigBuildError
from wsss_core.declared_parameters import (HASH_VERSION, REQUIRED, declaration_of,
                                           same_value)
from wsss_core.pipeline.stage import Stage, StageContext
from wsss_core.pipeline.training_stage import TrainingStage


class _Base(Stage):
    def __init__(self, name, size: int = 3, mode: str = 'a', **options):
        super().__init__(name, size=size, mode=mode, **options)


class _Child(_Base):
    def __init__(self, name, mode: str = 'b', extra: float = 0.5, **options):
        super().__init__(name, mode=mode, extra=extra, **options)


class _Wrapper(nn.Module):
    """Passes its **kwargs to nn.Module (code outside the project): an open declaration."""
    def __init__(self, width: int = 1, **kwargs):
        super().__init__()


class _Listed(nn.Module):
    extra_parameters = {'alpha': 1.0}

    def __init__(self, width: int = 1, **kwargs):
        super().__init__()


def test_the_walk_follows_kwargs_to_the_stage_base_and_is_closed_there():
    decl = declaration_of(_Child)
    assert list(decl.parameters) == ['name', 'mode', 'extra', 'size']
    assert decl.parameters['mode'] == 'b' and decl.parameters['name'] is REQUIRED
    assert not decl.open and decl.unknown(['size', 'sizes']) == ['sizes']
    assert decl.closest('sizes') == ['size']
    assert declaration_of(_Wrapper).open and declaration_of(_Wrapper).unknown(['x']) == []
    listed = declaration_of(_Listed)
    assert not listed.open and listed.parameters == {'width': 1, 'alpha': 1.0}


def test_training_stages_share_one_declaration_of_the_common_options():
    shared = {'amp', 'amp_dtype', 'compile', 'channels_last', 'sync_bn',
              'find_unused_parameters', 'nonfinite_loss'}
    assert shared <= set(declaration_of(TrainingStage).parameters)


def test_same_value_treats_tuples_as_lists_and_bools_apart_from_numbers():
    assert same_value((1.0, 0.5), [1, 0.5]) and same_value({'a': (1,)}, {'a': [1]})
    assert not same_value(True, 1) and not same_value(0, False)
    assert not same_value([1, 2], [1, 2, 3]) and same_value(None, None)


def test_canonical_form_and_hash_leave_out_options_at_their_defaults(tmp_path):
    ctx = StageContext(cfg=Config(dict(data=dict(type='SyntheticShapes'))), work_dir=tmp_path,
                       stage_dir=tmp_path / 's')
    plain, spelled = _Child('s'), _Child('s', mode='b', size=3, extra=0.5)
    assert declaration_of(_Child).canonical(spelled.options) == {}
    assert plain.hash_payload(ctx) == spelled.hash_payload(ctx)
    payload = _Child('s', size=4).hash_payload(ctx)
    assert payload['options'] == {'size': 4} and payload['hash_version'] == HASH_VERSION
    assert payload['type'] == '_Child'


def test_a_stage_refuses_an_option_it_does_not_declare():
    with pytest.raises(ConfigBuildError, match=r"'sizes' -> did you mean 'size'\?"):
        _Child('s', sizes=3)


# ----------------------------------------------------------------------------- all of them
def _registries():
    from mmengine.registry import Registry

    from wsss_core import registry as R
    return {name: getattr(R, name) for name in dir(R) if isinstance(getattr(R, name), Registry)}


#: dummy values for required parameters: the refusal comes before any of them is used
_DUMMY = dict(model=dict(type='CAMClassifier'), backbone=dict(type='SmallResNet'))

#: open declarations: their **kwargs go to code outside the project (timm) or to the
#: component they build (ImagePairs' inner data set), which refuses a misspelt option
#: itself when the component is built (the config needed to build them)
_DELEGATES = {
    'TimmBackbone': dict(model_name='resnet18'),
    'TimmFeatureLevels': dict(model_name='resnet18'),
    'GETAMViT': dict(model_name='vit_tiny_patch16_224', img_size=32, checkpoint=None),
    'ImagePairs': dict(dataset=dict(type='SyntheticShapes')),
}


def _real_args(name: str) -> dict:
    """Components whose registry builds them with more than the config (schedulers get the
    optimiser): the arguments that make the build reach the option check."""
    if name == 'SteppedPolyLR':
        import torch
        return dict(optimizer=torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))
    return {}


_PLUGINS = ('deeplab', 'oaa', 'nsrom', 'edam', 'moana', 'getam')


def _all_components():
    """(registry, name) of every component the core's and the shipped plugins' component
    tables declare; read from the torch-free tables, so collecting registers nothing (a test
    that expects a plugin's component to be unknown may run before this file)."""
    import importlib
    tables = [importlib.import_module('wsss_core.core_plugin').COMPONENTS]
    tables += [importlib.import_module(f'wsss_{p}.plugin').COMPONENTS for p in _PLUGINS]
    return sorted((reg, name) for table in tables for reg, names in table.items()
                  for name in names)


@pytest.mark.parametrize('reg_name, name', _all_components())
def test_every_registered_component_refuses_a_misspelt_option(reg_name, name):
    """Every stage and component: an option one letter off a declared one is refused when it
    is built, naming the option; with a closed declaration the message names the closest
    declared option (checked before the constructor runs)."""
    from wsss_core.plugin_loader import load_plugins
    from wsss_core.registry import build
    load_plugins(list(_PLUGINS))
    reg = _registries()[reg_name]
    cls = reg.module_dict[name]
    assert inspect.isclass(cls), f'{name} is not a class: nothing declares its options'
    decl = declaration_of(cls)
    if decl.open and name not in _DELEGATES:
        pytest.fail(f'{reg_name} {name} has an open declaration: declare its **kwargs '
                    '(extra_parameters) or list it in _DELEGATES with a config that builds it')
    named = [p for p in decl.parameters if p != 'name']
    target = named[0] if named else 'option'
    misspelt = target + 'x'
    cfg = {k: _DUMMY.get(k, 'x') for k, v in decl.parameters.items() if v is REQUIRED}
    cfg.update(_DELEGATES.get(name, {}))
    real = _real_args(name)
    if real:   # built by the registry's own build function: the constructor refuses it
        cfg = dict(real, type=name, **{misspelt: 1})
        with pytest.raises(TypeError, match=misspelt):
            build(cfg, reg)
        return
    cfg.update(type=name, **{misspelt: 1})
    if decl.open:
        with pytest.raises(TypeError, match=misspelt):
            build(cfg, reg)
        return
    with pytest.raises(ConfigBuildError) as err:
        build(cfg, reg)
    assert misspelt in str(err.value)
    if named:
        assert f"did you mean '{target}'" in str(err.value)


def test_a_stage_without_a_constructor_takes_only_its_name():
    class Bare(Stage):
        pass
    assert declaration_of(Bare).parameters == {'name': REQUIRED}
    assert Bare('b').options == {}
    with pytest.raises(ConfigBuildError, match="does not take the option 'size'"):
        Bare('b', size=1)
