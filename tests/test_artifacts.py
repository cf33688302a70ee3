"""Typed artifacts: one writer and one reader per kind, and the build-time graph check."""
from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from wsss_core.pipeline.artifacts import (CAM_SET, FEATURE_CAMS, LABEL_SET, PREDICTIONS,
                                          TRAINED_MODEL, FolderArtifact, TrainedModel,
                                          check_graph, merged_records)
from wsss_core.pipeline.manifest import write_manifest
from wsss_core.pipeline.stage import Stage, StageContext, StageError


class _Data:
    num_classes = 3
    class_names = ('a', 'b', 'c')


def _ctx(tmp_path) -> StageContext:
    return StageContext(cfg=Config(dict(data=dict(type='SyntheticShapes'))), work_dir=tmp_path,
                        stage_dir=tmp_path / 'reader')


def test_folder_kind_round_trip(tmp_path):
    record = CAM_SET.record('cams', 'val', _Data())
    assert record == dict(cams='cams', split='val', num_classes=3, class_names=['a', 'b', 'c'],
                          kinds=['cam_set'])
    write_manifest(tmp_path / 'maker', dict(artifacts=record))
    cams = CAM_SET.read(_ctx(tmp_path), 'maker', 'reader', 'cams')
    assert isinstance(cams, FolderArtifact)
    assert cams.folder == tmp_path / 'maker' / 'cams' and cams.split == 'val'
    assert cams.num_classes == 3 and cams.path('x1') == tmp_path / 'maker' / 'cams' / 'x1.npz'


def test_reader_names_reader_option_and_stage(tmp_path):
    write_manifest(tmp_path / 'trainer', dict(artifacts=TRAINED_MODEL.record('model.pth', {})))
    with pytest.raises(StageError, match=r"\[reader\] cams='trainer': stage 'trainer' did not "
                                         r'record a CAM set'):
        CAM_SET.read(_ctx(tmp_path), 'trainer', 'reader', 'cams')
    # a model record is not a label set either, even though both may hold num_classes
    with pytest.raises(StageError, match='did not record a label set'):
        LABEL_SET.read(_ctx(tmp_path), 'trainer', 'reader', 'labels')


def test_manifest_written_before_kinds_is_read_by_its_entries(tmp_path):
    """A manifest without ``kinds`` (written before they were recorded) holds a kind when it
    has the kind's entries; with ``kinds`` recorded, only the listed kinds count."""
    write_manifest(tmp_path / 'old', dict(artifacts=dict(labels='labels', split='train')))
    labels = LABEL_SET.read(_ctx(tmp_path), 'old', 'reader', 'labels')
    assert labels.folder == tmp_path / 'old' / 'labels' and labels.num_classes is None
    with pytest.raises(StageError, match='did not record a CAM set'):
        CAM_SET.read(_ctx(tmp_path), 'old', 'reader', 'cams')
    write_manifest(tmp_path / 'new', dict(artifacts=dict(labels='labels', split='train',
                                                         kinds=['predictions'])))
    with pytest.raises(StageError, match='did not record a label set'):
        LABEL_SET.read(_ctx(tmp_path), 'new', 'reader', 'labels')


def test_trained_model_loads_weights_into_the_recorded_config(tmp_path, core_registered):
    import torch

    from wsss_core.registry import MODELS, build
    cfg = dict(type='CAMClassifier', num_classes=2, backbone=dict(type='SmallResNet', widths=(4, 4, 8, 8)))
    net = build(cfg, MODELS)
    (tmp_path / 'train').mkdir()
    torch.save(net.state_dict(), tmp_path / 'train' / 'model.pth')
    write_manifest(tmp_path / 'train', dict(artifacts=TRAINED_MODEL.record(
        'model.pth', cfg, 2, ['x', 'y'])))
    trained = TRAINED_MODEL.read(_ctx(tmp_path), 'train', 'reader', 'source')
    assert isinstance(trained, TrainedModel) and trained.class_names == ['x', 'y']
    model = trained.load()
    assert not model.training
    for key, value in net.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_merged_records_list_each_kind_once():
    merged = merged_records(TRAINED_MODEL.record('m.pth', {}, 2),
                            FEATURE_CAMS.record('accumulated', 'train', num_classes=2),
                            dict(trained_on='x'))
    assert merged['kinds'] == ['trained_model', 'feature_cams']
    assert merged['accumulated'] == 'accumulated' and merged['weights'] == 'm.pth'
    assert merged['trained_on'] == 'x'


class _Maker(Stage):
    produces = (PREDICTIONS,)


class _Reader(Stage):
    reads = {'labels': (LABEL_SET, PREDICTIONS), 'more': CAM_SET}

    def __init__(self, name, labels=None, more=None):
        super().__init__(name, labels=labels, more=more)


def test_graph_check_accepts_any_listed_kind_and_reads_dict_and_list_options():
    maker, reader = _Maker('pred'), _Reader('r', labels='pred')
    check_graph([maker, reader])
    assert _Reader('r', labels=['pred'], more=dict(a='x', b='pred')).inputs() == ['pred', 'x']
    with pytest.raises(StageError, match=r"stage 'r' \(_Reader\) reads more='pred' as a CAM "
                                         r"set.*stage 'pred' \(_Maker\) produces a prediction "
                                         r'set.*no stage of this config does'):
        check_graph([maker, _Reader('r', labels='pred', more=dict(a='pred'))])


def test_read_input_picks_the_kind_the_stage_recorded(tmp_path):
    write_manifest(tmp_path / 'pred', dict(artifacts=PREDICTIONS.record('predictions', 'val')))
    got = _Reader('r', labels='pred').read_input(_ctx(tmp_path), 'labels')
    assert got.kind is PREDICTIONS and got.folder == tmp_path / 'pred' / 'predictions'


def test_refine_labels_pointed_at_a_training_stage_is_refused_when_built(tmp_path,
                                                                          core_registered):
    """The issue's case: RefineLabels(cams=<a training stage>) fails when the pipeline is
    built, naming both stages, before anything runs."""
    from wsss_core.pipeline import Pipeline
    cfg = Config(dict(seed=0, data=dict(type='SyntheticShapes', num_train=4, num_val=2),
                      stages=dict(
                          train=dict(type='TrainClassifier', model=dict(
                              type='CAMClassifier', backbone=dict(type='SmallResNet'))),
                          cams=dict(type='MakeCAMs', source='train'),
                          labels=dict(type='RefineLabels', cams='train'))))
    with pytest.raises(StageError) as err:
        Pipeline(cfg, tmp_path)
    message = str(err.value)
    assert "stage 'labels' (RefineLabels) reads cams='train' as a CAM set" in message
    assert "stage 'train' (TrainClassifier) produces a trained model" in message
    assert "stages of this config that do: ['cams']" in message
    assert not any(Path(tmp_path).iterdir())            # nothing was written
