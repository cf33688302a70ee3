"""The pieces of backbone pretraining that need no corpus: the pretraining classifier, the
single-label accuracy, the PRETRAINED artifact, SmallResNet's ``pretrained=`` and a training
stage's ``pretrained_from``."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.config import Config

from wsss_core.evaluation.classification import SingleLabelAccuracy
from wsss_core.io import DataFileError
from wsss_core.models.pretrain_classifier import PretrainClassifier, pooled_features
from wsss_core.models.small_resnet import SmallResNet
from wsss_core.pipeline.artifacts import PRETRAINED, PretrainedBackbone
from wsss_core.pipeline.checksums import file_digest
from wsss_core.pipeline.manifest import write_manifest
from wsss_core.pipeline.stage import StageContext, StageError

TINY = dict(type='SmallResNet', widths=(4, 8, 8, 8))


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _ctx(tmp_path) -> StageContext:
    return StageContext(cfg=Config(dict(data=dict(type='SyntheticShapes'))), work_dir=tmp_path,
                        stage_dir=tmp_path / 'reader')


def test_pooled_features_of_every_backbone_output():
    fmap = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(pooled_features(fmap), fmap.mean(dim=(2, 3)))
    assert torch.equal(pooled_features([torch.zeros(2, 5, 4, 4), fmap]), fmap.mean(dim=(2, 3)))
    tokens = torch.randn(2, 5, 3)
    assert torch.allclose(pooled_features(dict(tokens=tokens), 1), tokens[:, 1:].mean(1))
    with pytest.raises(TypeError, match='tokens'):
        pooled_features(dict(hooks=[]))


def test_pretrain_classifier_loss_is_cross_entropy_of_the_one_hot_class(core_registered):
    torch.manual_seed(0)
    model = PretrainClassifier(backbone=dict(TINY), num_classes=5).eval()
    img = torch.rand(3, 3, 32, 32)
    labels = torch.eye(5)[[4, 0, 2]]
    logits = model(img)
    loss = model(img, labels, mode='loss')['loss_cls']
    by_hand = -torch.log_softmax(logits, 1)[torch.arange(3), torch.tensor([4, 0, 2])].mean()
    assert torch.allclose(loss, by_hand, atol=1e-6)
    preds = model(img, labels, mode='predict')
    assert len(preds) == 3 and torch.allclose(preds[0]['scores'].sum(), torch.tensor(1.0))
    smooth = PretrainClassifier(backbone=dict(TINY), num_classes=5, label_smoothing=0.2).eval()
    smooth.load_state_dict(model.state_dict())
    assert not torch.allclose(smooth(img, labels, mode='loss')['loss_cls'], loss)


def test_single_label_accuracy_top1_top5_and_ties():
    metric = SingleLabelAccuracy()
    eye = np.eye(7, dtype=np.float32)
    scores = np.zeros((3, 7), np.float32)
    scores[0, 3] = 1.0                  # right
    scores[1] = np.arange(7)            # class 0 is ranked last: 6 classes above it
    scores[2, [1, 2]] = 0.5             # a tie between the true class 2 and class 1
    samples = [dict(scores=s, labels=eye[c]) for s, c in zip(scores, [3, 0, 2])]
    metric.process({}, samples)
    out = metric.compute_metrics(metric.results)
    # the tie goes to the lower index (class 1), so image 2 is wrong at top-1
    assert out['top1'] == pytest.approx(1 / 3)
    assert out['top5'] == pytest.approx(2 / 3)


def _write_weights(tmp_path, module) -> tuple:
    path = tmp_path / 'cache' / 'SmallResNet-0123.pth'
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), path)
    return path, file_digest(path)


def test_pretrained_artifact_round_trip_and_its_refusals(tmp_path):
    path, digest = _write_weights(tmp_path, SmallResNet(widths=(4, 8, 8, 8)))
    write_manifest(tmp_path / 'pre', dict(artifacts=PRETRAINED.record(path, dict(TINY), digest)))
    got = PRETRAINED.read(_ctx(tmp_path), 'pre', 'reader', 'pretrained_from')
    assert isinstance(got, PretrainedBackbone) and got.weights == path.resolve()
    assert got.backbone_cfg == dict(TINY, widths=[4, 8, 8, 8])   # as JSON holds it
    path.write_bytes(path.read_bytes() + b'x')
    with pytest.raises(StageError, match='changed since'):
        PRETRAINED.read(_ctx(tmp_path), 'pre', 'reader', 'pretrained_from')
    path.unlink()
    with pytest.raises(StageError, match=r'no longer exists.*--stages pre'):
        PRETRAINED.read(_ctx(tmp_path), 'pre', 'reader', 'pretrained_from')


def test_small_resnet_loads_its_own_names_and_refuses_another_width(tmp_path):
    torch.manual_seed(1)
    source = SmallResNet(widths=(4, 8, 8, 8))
    path, _ = _write_weights(tmp_path, source)
    torch.manual_seed(2)
    loaded = SmallResNet(widths=(4, 8, 8, 8), out_indices=(0, 4), pretrained=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(DataFileError, match='wrong shape'):
        SmallResNet(widths=(4, 8, 8, 16), pretrained=str(path))


def test_training_stage_hands_pretrained_weights_to_the_backbone(tmp_path, core_registered):
    from wsss_core.pipeline.artifacts import check_graph
    from wsss_core.pipeline.train_classifier import TrainClassifier
    from wsss_core.pipeline.train_segmentor import TrainSegmentor
    assert TrainSegmentor.reads['pretrained_from'] is PRETRAINED and 'labels' in TrainSegmentor.reads
    path, digest = _write_weights(tmp_path, SmallResNet(widths=(4, 8, 8, 8)))
    write_manifest(tmp_path / 'pre', dict(artifacts=PRETRAINED.record(path, dict(TINY), digest)))
    model = dict(type='CAMClassifier', backbone=dict(TINY))
    stage = TrainClassifier('cls', model=model, pretrained_from='pre')
    cfg = stage.with_pretrained_backbone(_ctx(tmp_path), stage.model_cfg(3))
    assert cfg['backbone']['pretrained'] == str(path.resolve())
    assert 'pretrained' not in model['backbone']          # a copy: the record stays clean
    nested = TrainClassifier('cls', model=dict(type='CAMClassifier', backbone=dict(TINY)),
                             pretrained_from='pre', pretrained_key='backbone.nothing')
    with pytest.raises(StageError, match="no dict at 'nothing'"):
        nested.with_pretrained_backbone(_ctx(tmp_path), nested.model_cfg(3))
    other = TrainClassifier('cls', model=dict(type='CAMClassifier',
                                              backbone=dict(type='ResNet38')),
                            pretrained_from='pre')
    with pytest.raises(StageError, match='pretrained a SmallResNet.*is a ResNet38'):
        other.with_pretrained_backbone(_ctx(tmp_path), other.model_cfg(3))
    # the graph check: pretrained_from must name a stage that produces PRETRAINED
    wrong = TrainClassifier('seg', model=dict(model), pretrained_from='cls0')
    with pytest.raises(StageError, match="reads pretrained_from='cls0'"):
        check_graph([TrainClassifier('cls0', model=dict(model)), wrong])


def test_graph_check_refuses_a_pretrained_backbone_of_another_type(core_registered):
    """When the pipeline is built, before the Pretrain stage's hours: the backbone at
    ``pretrained_key`` must be the type the named Pretrain stage pretrains."""
    from wsss_core.pipeline.artifacts import check_graph
    from wsss_core.pipeline.pretrain import Pretrain
    from wsss_core.pipeline.train_classifier import TrainClassifier
    pre = Pretrain('pre', backbone=dict(TINY))
    assert pre.backbone_config == TINY
    fits = TrainClassifier('cls', model=dict(type='CAMClassifier', backbone=dict(TINY)),
                           pretrained_from='pre')
    check_graph([pre, fits])
    other = TrainClassifier('cls', model=dict(type='CAMClassifier',
                                              backbone=dict(type='ResNet38')),
                            pretrained_from='pre')
    with pytest.raises(StageError, match=r"\[cls\] pretrained_from='pre' pretrained a "
                                         r'SmallResNet.*is a ResNet38'):
        check_graph([pre, other])
    nested = TrainClassifier('cls', model=dict(type='CAMClassifier',
                                               backbone=dict(type='WithX', backbone=dict(TINY))),
                             pretrained_from='pre', pretrained_key='backbone.backbone')
    check_graph([pre, nested])                               # a dotted path to the right type
    missing = TrainClassifier('cls', model=dict(type='CAMClassifier', backbone=dict(TINY)),
                              pretrained_from='pre', pretrained_key='backbone.backbone')
    with pytest.raises(StageError, match="no dict at 'backbone'"):
        check_graph([pre, missing])
