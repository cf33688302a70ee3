"""Stages by name (issue 19.5): a ``stages`` dict merges across ``_base_`` by key, stages are
inserted after / before a named one or removed with ``None``, ``--cfg-options`` address a
stage by name in either form, and a list config and its dict equivalent hash the same."""
from __future__ import annotations

import pytest

from wsss_core.config import ConfigError, load_config
from wsss_core.config_stages import StageOrderError, by_name_options, stage_configs


def names(stages):
    return [s['name'] for s in stages]


def test_dict_keys_name_the_stages_in_insertion_order():
    out = stage_configs({'b': dict(type='X', k=1), 'a': dict(type='Y', name='a')})
    assert out == [dict(type='X', k=1, name='b'), dict(type='Y', name='a')]


def test_a_name_inside_that_differs_from_the_key_is_refused():
    with pytest.raises(StageOrderError, match="stages.a has name='b'"):
        stage_configs({'a': dict(type='X', name='b')})


def test_none_removes_a_stage():
    assert names(stage_configs({'a': dict(type='X'), 'b': None, 'c': dict(type='X')})) == \
        ['a', 'c']


def test_after_and_before_place_a_stage_and_are_not_options():
    stages = {'a': {}, 'b': {}, 'c': {},
              'x': dict(after='a'), 'y': dict(after='a'), 'z': dict(before='c'),
              'w': dict(after='x')}   # an anchor that is itself placed
    out = stage_configs(stages)
    # x then y right after a (config order), w after x, z right before c
    assert names(out) == ['a', 'x', 'w', 'y', 'b', 'z', 'c']
    assert all('after' not in s and 'before' not in s for s in out)


@pytest.mark.parametrize('stages, match', [
    ({'a': {}, 'x': dict(after='nope')}, "after='nope', which is not a stage"),
    ({'a': {}, 'x': dict(after='a', before='a')}, "both 'after' and 'before'"),
    ({'a': 3}, 'stages.a must be a dict'),
    ('abc', "'stages' must be a dict"),
])
def test_bad_entries_say_what_is_wrong(stages, match):
    with pytest.raises(StageOrderError, match=match):
        stage_configs(stages)


def test_list_form_is_kept_as_it_is():
    stages = [dict(type='X', name='b'), dict(type='Y', name='a')]
    assert stage_configs(stages) == stages


def test_by_name_options_turn_names_into_indices_on_a_list():
    stages = [dict(name='a'), dict(name='b')]
    assert by_name_options({'stages.b.k': 1, 'stages.0.j': 2, 'seed': 3}, stages) == \
        {'stages.1.k': 1, 'stages.0.j': 2, 'seed': 3}
    with pytest.raises(StageOrderError, match="no stage is named 'c'"):
        by_name_options({'stages.c.k': 1}, stages)


def test_by_name_options_turn_indices_into_names_on_a_dict():
    stages = {'a': {}, 'b': {}}
    assert by_name_options({'stages.1.k': 1, 'stages.a.j': 2, 'stages.new.type': 'X'},
                           stages) == {'stages.b.k': 1, 'stages.a.j': 2, 'stages.new.type': 'X'}


def test_a_misspelt_stage_of_a_dict_config_is_refused_with_the_closest_name():
    stages = {'classify': {'type': 'T'}, 'cams': {'type': 'M'}}
    with pytest.raises(StageOrderError, match=r"no stage is named 'clasify'; did you mean "
                                              r"'classify'\?"):
        by_name_options({'stages.clasify.max_epochs': 3}, stages)
    with pytest.raises(StageOrderError, match="no stage is named '7'"):
        by_name_options({'stages.7.x': 1}, stages)
    with pytest.raises(StageOrderError) as err:       # a list cannot take a new stage
        by_name_options({'stages.extra.type': 'X'}, [dict(name='classify')])
    assert 'a new stage needs' not in str(err.value)
    assert by_name_options({'stages._delete_': True, 'stages.only.type': 'X'}, stages) == \
        {'stages._delete_': True, 'stages.only.type': 'X'}   # mmengine replaces them all
    # a new stage is defined by its type, given as a key or inside a whole dict value
    new = by_name_options({'stages.sheet.type': 'RenderSheet', 'stages.sheet.after': 'cams',
                           'stages.extra': dict(type='X'), 'stages.extra2.k': 1,
                           'stages.extra2.type': 'Y'}, stages)
    assert set(new) == {'stages.sheet.type', 'stages.sheet.after', 'stages.extra',
                        'stages.extra2.k', 'stages.extra2.type'}


BASE = """
stages = dict(
    classify=dict(type='T', max_epochs=5, model=dict(depth=18, width=4)),
    cams=dict(type='M', source='classify'),
    sheet=dict(type='S'),
)
"""


def test_a_variant_changes_inserts_and_removes_by_name(tmp_path):
    (tmp_path / 'base.py').write_text(BASE)
    (tmp_path / 'variant.py').write_text(
        "_base_ = ['base.py']\n"
        "stages = dict(classify=dict(model=dict(depth=50)), sheet=None,\n"
        "              labels=dict(type='R', after='classify'))\n")
    cfg = load_config(str(tmp_path / 'variant.py'), {'stages.cams.source': 'x'})
    assert cfg.stages == [
        dict(type='T', max_epochs=5, model=dict(depth=50, width=4), name='classify'),
        dict(type='R', name='labels'),
        dict(type='M', source='x', name='cams'),
    ]


def test_by_name_cfg_options_on_a_list_config(tmp_path):
    (tmp_path / 'list.py').write_text(
        "stages = [dict(type='T', name='classify', max_epochs=5), dict(type='M', name='cams')]\n")
    cfg = load_config(str(tmp_path / 'list.py'),
                      {'stages.classify.max_epochs': 3, 'stages.1.k': 1})
    assert cfg.stages == [dict(type='T', name='classify', max_epochs=3),
                          dict(type='M', name='cams', k=1)]
    with pytest.raises(ConfigError, match="no stage is named 'nope'"):
        load_config(str(tmp_path / 'list.py'), {'stages.nope.x': 1})


def test_a_list_config_and_its_dict_equivalent_build_the_same_hashed_stages(tmp_path):
    from wsss_core.pipeline import Pipeline
    from wsss_core.pipeline.manifest import config_hash
    classify = dict(type='TrainClassifier', model=dict(type='CAMClassifier'), max_epochs=1)
    cams = dict(type='MakeCAMs', source='classify', split='train')
    listed = dict(data=dict(type='SyntheticShapes', split='train'), stages=[
        dict(classify, name='classify'), dict(cams, name='cams')])
    keyed = dict(data=listed['data'],   # written in another order, placed by 'after'
                 stages=dict(cams=dict(cams, after='classify'), classify=classify))

    def built(cfg):
        from mmengine.config import Config
        from wsss_core.plugin_loader import load_plugins
        load_plugins()
        pipe = Pipeline(Config(cfg), tmp_path, progress=False)
        return [(s.name, type(s).__name__, s.options,
                 config_hash(s.hash_payload(pipe.context(s)), {})) for s in pipe.stages]

    assert built(listed) == built(keyed)


def test_merge_options_addresses_a_loaded_config_by_name(tmp_path):
    from wsss_core.config import merge_options
    (tmp_path / 'base.py').write_text(BASE)
    cfg = merge_options(load_config(str(tmp_path / 'base.py')),
                        {'stages.cams.source': 'y', 'stages.0.max_epochs': 1})
    assert cfg.stages[0]['max_epochs'] == 1 and cfg.stages[1]['source'] == 'y'
    with pytest.raises(ConfigError, match="no stage is named 'nope'"):
        merge_options(cfg, {'stages.nope.x': 1})


def test_a_derived_config_changing_a_misspelt_stage_is_refused(tmp_path):
    (tmp_path / 'base.py').write_text(
        "stages = dict(classify=dict(type='T', max_epochs=5), cams=dict(type='M'))\n")
    (tmp_path / 'derived.py').write_text(
        "_base_ = ['./base.py']\nstages = dict(clasify=dict(max_epochs=3))\n")
    with pytest.raises(ConfigError, match=r"stages.clasify has no type: .*did you mean "
                                          r"'classify'\?"):
        load_config(str(tmp_path / 'derived.py'))
