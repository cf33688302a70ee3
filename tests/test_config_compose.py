"""``stages_from``: a config composed of the stages of other configs (``configs/zoo.py``)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wsss_core.config import ConfigError, load_config
from wsss_core.config_compose import stages_from

REPO = Path(__file__).resolve().parents[1]

SOURCE = """
seed = 0
stages = dict(
    a_train=dict(type='TrainClassifier', max_epochs=3, model=dict(type='M', width=8, depth=2)),
    a_cams=dict(type='MakeCAMs', source='a_train'),
    a_late=dict(type='MakeCAMs', source='a_train', before='a_cams'),
    b_train=dict(type='TrainClassifier', max_epochs=1),
)
"""


@pytest.fixture
def source(tmp_path):
    path = tmp_path / 'source.py'
    path.write_text(SOURCE)
    return str(path)


def test_selects_by_pattern_in_run_order_without_placement_keys(source):
    got = stages_from(source, ['a_*'])
    assert list(got) == ['a_train', 'a_late', 'a_cams']        # 'before' resolved, then dropped
    assert got['a_late'] == dict(type='MakeCAMs', source='a_train')
    assert list(stages_from(source, ['a_*'], exclude=['*late'])) == ['a_train', 'a_cams']
    assert list(stages_from(source, 'b_train')) == ['b_train']


def test_update_merges_nested_options_and_delete_replaces(source):
    got = stages_from(source, ['a_train', 'b_train'],
                      update={'*_train': dict(max_epochs=9, model=dict(width=4))})
    assert got['a_train']['max_epochs'] == got['b_train']['max_epochs'] == 9
    assert got['a_train']['model'] == dict(type='M', width=4, depth=2)
    replaced = stages_from(source, ['a_train'],
                           update={'a_train': dict(model=dict(_delete_=True, type='N'))})
    assert replaced['a_train']['model'] == dict(type='N')
    assert stages_from(source, ['a_train'])['a_train']['max_epochs'] == 3   # source untouched


def test_a_pattern_matching_nothing_names_the_stages(source):
    with pytest.raises(ConfigError, match=r"\['c_\*'\] match no stage.*a_train"):
        stages_from(source, ['a_*', 'c_*'])
    with pytest.raises(ConfigError, match="update pattern 'b_train' matches no selected"):
        stages_from(source, ['a_*'], update={'b_train': dict(max_epochs=1)})


def test_a_composing_config_loads_and_a_name_clash_is_refused(source, tmp_path):
    base = tmp_path / 'base.py'
    base.write_text("seed = 1\nstages = dict(first=dict(type='TrainClassifier'))\n")
    composed = tmp_path / 'composed.py'
    composed.write_text(textwrap.dedent(f"""
        _base_ = ['{base}']
        from wsss_core.config_compose import stages_from
        stages = dict(**stages_from('{source}', ['a_train', 'a_cams']))
    """))
    cfg = load_config(str(composed))
    assert [s['name'] for s in cfg.stages] == ['first', 'a_train', 'a_cams']
    assert cfg.seed == 1 and 'stages_from' not in cfg
    clash = tmp_path / 'clash.py'
    clash.write_text(textwrap.dedent(f"""
        _base_ = ['{base}']
        from wsss_core.config_compose import stages_from
        stages = dict(**stages_from('{source}', ['a_train']), **stages_from('{source}', ['a_*']))
    """))
    with pytest.raises(Exception, match='a_train'):
        load_config(str(clash))


def test_the_zoo_runs_each_methods_own_stages_and_compares_them(tmp_path):
    """configs/zoo.py: every method's stages are its own config's (DeepLab's recipe aside),
    every segmentation network starts from the pretrained SmallResNet with the zoo's one
    recipe (750 iterations), the page's roles name stages of the zoo, and the pipeline builds
    (graph and pretrained types checked)."""
    from wsss_core.pipeline import Pipeline
    from wsss_core.plugin_loader import load_plugins
    load_plugins()
    cfg = load_config(str(REPO / 'configs' / 'zoo.py'))
    zoo = {s['name']: s for s in cfg.stages}
    assert len(Pipeline(cfg, tmp_path).stages) == len(zoo)
    for spec, name in [('oaa::synthetic_pretrained.py', 'oaa_classify'),
                       ('edam::synthetic_pretrained.py', 'edam_classify'),
                       ('moana::synthetic_pretrained.py', 'moana_irn'),
                       ('getam::synthetic_hybrid_pretrained.py', 'getam_hybrid')]:
        own = {s['name']: s for s in load_config(spec).stages}[name]
        assert zoo[name] == own, name
    segmentors = [n for n, s in zoo.items() if s['type'] == 'TrainSegmentor']
    assert len(segmentors) == 6
    assert all(zoo[n]['pretrained_from'] == 'pretrain' for n in segmentors)
    assert {zoo[n]['max_iters'] for n in segmentors} == {750}
    assert not any(n.startswith(('base_', 'getam_pretrain')) or n in ('getam', 'getam_maps')
                   for n in zoo), 'the IRN arm and the plain-ViT GETAM are left out'
    assert zoo['pretrain']['type'] == 'Pretrain'
    for method, roles in cfg.compare.items():
        assert {'classifier', 'cams', 'labels'} <= set(roles), method
        for role, stage in roles.items():
            assert stage in zoo, (method, role, stage)
