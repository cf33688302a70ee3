"""wsss-prepare's item registry, config references, ledger status and the run's preflight."""
from __future__ import annotations

import json

import pytest

from wsss_core.prepare.items import (CORE_ITEMS, Download, PrepareItem, all_items, get_item,
                                     root_dir)
from wsss_core.prepare.ledger import item_status, write_ledger
from wsss_core.prepare.refs import (MissingItemError, check_config_items, config_items,
                                    find_item_refs, resolve_item_ref)


def weights_item(name='w', filename='w-0123abcd.pth', **kw):
    return PrepareItem(name=name, kind='weights', description='test weights', root='weights',
                       path=filename, downloads=(Download(filename, urls=('http://x/' + filename,),
                                                          sha256='0123abcd'),), **kw)


@pytest.fixture
def roots(tmp_path, monkeypatch):
    monkeypatch.setenv('WSSS_DATA', str(tmp_path / 'data'))
    monkeypatch.setenv('WSSS_WEIGHTS', str(tmp_path / 'weights'))
    return tmp_path


def test_core_items_are_valid_and_torchvision_names_carry_their_sha256_prefix():
    items = all_items(plugin_items=[])
    assert {'voc12', 'sbd', 'voc12-aug', 'coco14', 'cub200-wsol', 'ilsvrc-wsol',
            'torchvision-vgg16', 'torchvision-resnet50', 'torchvision-resnet101',
            'torchvision-inception-v3', 'psa-resnet38'} <= set(items)
    vgg = items['torchvision-vgg16'].downloads[0]
    assert vgg.sha256 == '397923af' and vgg.urls == (
        'https://download.pytorch.org/models/vgg16-397923af.pth',)
    assert items['voc12'].downloads[0].md5 == '6cd6e144f989b92b3379bac3b3de84fd'
    assert items['voc12-aug'].requires == ('voc12', 'sbd') and not items['voc12-aug'].downloads
    assert items['psa-resnet38'].manual_only and not items['torchvision-vgg16'].manual_only
    for item in CORE_ITEMS:   # every item says where it comes from and under which terms
        assert item.licence and item.description
        assert all(d.urls or d.manual for d in item.downloads)


def test_items_refuse_bad_definitions():
    with pytest.raises(ValueError, match='urls or say how'):
        Download('x.bin')
    with pytest.raises(ValueError, match='8 hex'):
        Download('x.bin', urls=('http://x',), sha256='abc')
    with pytest.raises(ValueError, match='root must be'):
        weights_item(root='elsewhere') if False else PrepareItem(
            name='x', kind='weights', description='', root='elsewhere', path='x')
    with pytest.raises(ValueError, match='inside its root'):
        PrepareItem(name='x', kind='weights', description='', root='weights', path='../x',
                    downloads=(Download('x', urls=('http://x',)),))
    with pytest.raises(ValueError, match='exactly one download'):
        PrepareItem(name='x', kind='weights', description='', root='weights', path='x')
    with pytest.raises(ValueError, match='defined twice'):
        all_items(plugin_items=[weights_item('voc12')])
    with pytest.raises(ValueError, match='requires unknown'):
        all_items(plugin_items=[weights_item(requires=('nope',))])
    with pytest.raises(KeyError, match='did you mean voc12'):
        get_item('voc21', all_items(plugin_items=[]))


def test_a_plugin_s_bad_items_are_left_out_with_a_warning_naming_it(monkeypatch, caplog):
    import logging
    from wsss_core import plugin_loader
    answers = [('good', [weights_item('good-w'), weights_item('good-w2', requires=('good-w',))]),
               ('bad', [weights_item('voc12'), {'name': 'x'}, weights_item('bad-w'),
                        weights_item('bad-r', requires=('nope',)),
                        weights_item('bad-rr', requires=('bad-r',))]),
               ('late', [weights_item('good-w')]), ('single', weights_item('single-w'))]
    monkeypatch.setattr(plugin_loader, 'plugin_hook_answers', lambda hook: answers)
    with caplog.at_level(logging.WARNING, logger='wsss'):
        items = all_items()
    assert {'good-w', 'good-w2', 'bad-w', 'voc12'} <= set(items)
    assert 'bad-r' not in items and 'bad-rr' not in items   # nor what requires it
    assert items['voc12'].kind == 'dataset'                    # the core's stays
    said = [r.getMessage() for r in caplog.records]
    assert "plugin 'bad': prepare item 'voc12' is already defined by 'core'; left out of " \
           'wsss-prepare' in said
    assert "plugin 'bad': wsss_prepare_items returned a dict, not a PrepareItem; left out of " \
           'wsss-prepare' in said
    assert "plugin 'single': wsss_prepare_items returned a PrepareItem, not a list of " \
           'PrepareItem; left out of wsss-prepare' in said and 'single-w' not in items
    assert "plugin 'late': prepare item 'good-w' is already defined by 'good'; left out of " \
           'wsss-prepare' in said
    assert any("plugin 'bad': prepare item 'bad-r' requires unknown item(s) ['nope']" in m
               for m in said)


def test_roots_come_from_the_environment_or_the_override(roots, monkeypatch):
    assert root_dir('data') == roots / 'data'
    assert root_dir('weights', '/elsewhere') == root_dir('weights', '/elsewhere').absolute()
    monkeypatch.delenv('WSSS_DATA')
    assert str(root_dir('data')).endswith('.cache/wsss/data')


def test_item_references_are_found_resolved_and_named_with_their_key_paths(roots):
    items = all_items(plugin_items=[weights_item()])
    cfg = dict(data=dict(type='VOC2012', data_root='item:voc12-aug'),
               stages=[dict(name='a', model=dict(backbone=dict(pretrained='item:w'))),
                       dict(name='b', extra=['plain', 'item:voc12-aug/saliency_aug'])])
    assert list(find_item_refs(cfg)) == [('data.data_root', 'item:voc12-aug'),
                                         ('stages.0.model.backbone.pretrained', 'item:w'),
                                         ('stages.1.extra.1', 'item:voc12-aug/saliency_aug')]
    assert resolve_item_ref('item:w', items) == roots / 'weights' / 'w-0123abcd.pth'
    assert resolve_item_ref('item:voc12-aug/saliency_aug', items) == \
        roots / 'data' / 'VOCdevkit' / 'VOC2012' / 'saliency_aug'
    named = config_items(cfg, items)
    assert [(i.name, keys) for i, keys in named] == [
        ('voc12-aug', ['data.data_root', 'stages.1.extra.1']),
        ('w', ['stages.0.model.backbone.pretrained'])]
    with pytest.raises(KeyError, match=r"stages.0.x = 'item:nope'"):
        config_items(dict(stages=[dict(x='item:nope')]), items)


def test_status_follows_the_ledger(roots):
    item = weights_item()
    path = item.location()
    assert item_status(item)[0] == 'missing'
    path.parent.mkdir(parents=True)
    path.write_bytes(b'12345')
    assert item_status(item)[0] == 'unverified'          # there, but not installed by us
    write_ledger(item, [path], downloads={}, source='from', sha256='feed')
    status, detail = item_status(item)
    assert status == 'present' and '1 files' in detail
    record = json.loads((roots / 'weights' / '.wsss-prepare' / 'w.json').read_text())
    assert record['files'] == {'w-0123abcd.pth': 5} and record['sha256'] == 'feed'
    assert item_status(item, deep=True)[0] == 'corrupt'    # 'feed' is not its SHA-256
    path.write_bytes(b'123')
    status, detail = item_status(item)
    assert status == 'corrupt' and '3 bytes, 5 recorded' in detail
    path.unlink()
    assert item_status(item)[0] == 'missing'


def test_check_config_items_names_the_missing_item_and_the_command(roots):
    items = all_items(plugin_items=[weights_item()])
    cfg = dict(stages=[dict(model=dict(pretrained='item:w'))])
    with pytest.raises(MissingItemError) as err:
        check_config_items(cfg, items, config_name='x::y.py')
    msg = str(err.value)
    assert 'w (test weights): missing' in msg and 'used by stages.0.model.pretrained' in msg
    assert 'wsss-prepare w   (or: wsss-prepare --for x::y.py)' in msg
    path = items['w'].location()
    path.parent.mkdir(parents=True)
    path.write_bytes(b'x')
    assert [i.name for i in check_config_items(cfg, items)] == ['w']   # unverified is usable


def test_wsss_run_stops_before_any_work_on_a_missing_item(roots, tmp_path, capsys):
    from wsss_core.cli import main
    config = tmp_path / 'needs_weights.py'
    config.write_text("_base_ = ['core::quickstart.py']\n"
                      "stages = [dict(type='TrainClassifier', name='classify', model=dict("
                      "type='CAMClassifier', num_classes=6, backbone=dict("
                      "type='TorchvisionResNet', depth=50, "
                      "pretrained='item:torchvision-resnet50')))]\n")
    work = tmp_path / 'work'
    assert main([str(config), '--work-dir', str(work), '--no-progress']) == 2
    err = capsys.readouterr().err
    assert 'torchvision-resnet50' in err and 'wsss-prepare torchvision-resnet50' in err
    assert not work.exists()                                   # nothing was started


def test_weight_loader_resolves_item_references(roots):
    import torch

    from wsss_core.models.timm_backbone import load_state_dict_file
    item = get_item('torchvision-vgg16', all_items(plugin_items=[]))
    item.location().parent.mkdir(parents=True)
    torch.save({'w': torch.ones(2)}, item.location())
    state = load_state_dict_file('item:torchvision-vgg16', 'pretrained')
    assert torch.equal(state['w'], torch.ones(2))
    from wsss_core.io import DataFileError
    with pytest.raises(DataFileError, match=r'resnet50-19c8e357.pth, which does not exist: '
                                            r'run  wsss-prepare torchvision-resnet50'):
        load_state_dict_file('item:torchvision-resnet50', 'pretrained')


def test_dataset_builder_resolves_an_item_data_root(roots, core_registered):
    import shutil

    from wsss_core.datasets import build_dataset
    from wsss_core.testing.layouts import voc_tree
    target = get_item('voc12', all_items(plugin_items=[])).location()
    shutil.copytree(voc_tree(3), target)
    dataset = build_dataset(dict(type='VOCLayoutDataset', data_root='item:voc12'),
                            split='train')
    assert len(dataset) == 3 and str(dataset.records[0].img_path).startswith(str(target))


def test_prepare_for_a_config_gets_the_items_its_recipes_name(roots, monkeypatch):
    """deeplab::voc12_deeplabv2_r101.py names voc12-aug in its data config; the COCO init
    weights come from its stages' recipe only, and voc12-aug brings voc12 and sbd."""
    from wsss_core.prepare import cli, fetch
    asked = []
    monkeypatch.setattr(fetch, 'prepare_items', lambda names, items, **kw: asked.extend(names))
    assert cli.main(['--for', 'deeplab::voc12_deeplabv2_r101.py', '--no-progress']) == 0
    assert sorted(asked) == ['deeplabv2-r101-coco', 'voc12-aug']
    order = [item.name for item in fetch.resolve_order(asked, all_items())]
    assert sorted(order) == ['deeplabv2-r101-coco', 'sbd', 'voc12', 'voc12-aug']
    assert order.index('voc12') < order.index('voc12-aug') > order.index('sbd')
    assert not (roots / 'data').exists() and not (roots / 'weights').exists()


def test_prepare_for_a_config_that_names_no_item_does_nothing(roots, capsys):
    from wsss_core.prepare import cli
    for extra in ([], ['--verify']):       # --verify: not every item, none
        assert cli.main(['--for', 'oaa::synthetic.py', *extra]) == 0
        captured = capsys.readouterr()
        assert 'names no item' in captured.err and captured.out == ''


def test_prepare_for_a_base_config_without_stages_scans_the_config_alone():
    from wsss_core.prepare.cli import _config_item_names
    assert _config_item_names('moana::_recipes/wsol_resnet50.py', all_items()) == ['torchvision-resnet50']
