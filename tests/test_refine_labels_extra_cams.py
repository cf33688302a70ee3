"""RefineLabels(extra_cams=...): a refiner chain reads the CAMs of more than one stage.

``extra_cams=dict(key=stage)`` puts that stage's maps in ``sample[key]`` and their class
ids in ``sample[key + '_class_ids']``; the stage becomes an input (ordering, validation,
upstream hash).  Without the option nothing changes, the config hash included.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from mmengine.config import Config

from wsss_core.io import load_cam, read_label_png, save_cam
from wsss_core.pipeline import Pipeline, StageError

SIZE = 48  # the tiny SyntheticShapes image size


def run(cfg, work_dir, **kw):
    return {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False, **kw).run()}


def stub_maps(img_id: str, class_ids, seed: int) -> np.ndarray:
    """Deterministic (K, SIZE, SIZE) maps in [0, 1) for one image of a stub CAM stage."""
    rng = np.random.default_rng([seed, sum(map(ord, img_id))])
    return rng.random((len(class_ids), SIZE, SIZE)).astype(np.float32)


def _register_test_components():
    from wsss_core.datasets import build_dataset
    from wsss_core.pipeline.artifacts import CAM_SET
    from wsss_core.pipeline.stage import Stage
    from wsss_core.refiners.base import LabelRefiner
    from wsss_core.registry import LABEL_REFINERS, STAGES

    if STAGES.get('_ExtraCamsStubCams') is None:
        @STAGES.register_module(name='_ExtraCamsStubCams')
        class StubCams(Stage):
            """Writes :func:`stub_maps` as the CAMs of ``split`` (no model)."""

            def __init__(self, name, split='train', seed=0, artifact='cams', declared=None):
                super().__init__(name, split=split, seed=seed, artifact=artifact)
                self.declared = bool(artifact) if declared is None else declared

            def produced_kinds(self):
                return (CAM_SET,) if self.declared else ()

            def run(self, ctx):
                o = self.options
                data = build_dataset(ctx.data_cfg, split=o['split'], load_gt=False)
                for rec in data.records:
                    save_cam(ctx.stage_dir / 'cams' / f'{rec.img_id}.npz',
                             stub_maps(rec.img_id, rec.class_ids, o['seed']), rec.class_ids)
                artifacts = dict(split=o['split'])
                if o['artifact']:
                    artifacts[o['artifact']] = 'cams'
                return dict(artifacts=artifacts)

    if LABEL_REFINERS.get('_ExtraCamsArgmax') is None:
        @LABEL_REFINERS.register_module(name='_ExtraCamsArgmax')
        class ExtraArgmax(LabelRefiner):
            """label = class id + 1 of the strongest map of ``sample[key]`` (0 where < 0.5)."""

            def __init__(self, key='plain'):
                self.key = key

            def refine(self, sample):
                maps, ids = sample[self.key], sample[f'{self.key}_class_ids']
                assert maps.dtype == np.float32 and maps.shape[0] == len(ids)
                sample['label'] = expected_label(maps, ids)
                return sample


def expected_label(maps, ids) -> np.ndarray:
    label = (np.asarray(ids)[maps.argmax(0)] + 1).astype(np.uint8)
    label[maps.max(0) < 0.5] = 0
    return label


@pytest.fixture(scope='module')
def components():
    from wsss_core.components import register_core_components
    register_core_components()
    _register_test_components()


def cfg_with(data_cfg, extra_stage=None, **refine_kw) -> dict:
    stages = [dict(type='_ExtraCamsStubCams', name='main', seed=1)]
    if extra_stage is not None:
        stages.append(extra_stage)
    stages.append(dict(type='RefineLabels', name='labels', cams='main',
                       refiners=[dict(type='_ExtraCamsArgmax', key='plain')], **refine_kw))
    return dict(seed=0, data=data_cfg, stages=stages)


# ----------------------------------------------------------------------------- options
def test_without_the_option_options_inputs_and_hash_are_unchanged(components, tiny_data_cfg):
    from wsss_core.pipeline.refine_labels import RefineLabels
    from wsss_core.pipeline.stage import StageContext
    plain = RefineLabels('labels', cams='cams')
    assert plain.hashed_options() == dict(cams='cams',
                                          refiners=[dict(type='BackgroundThreshold')])
    assert plain.inputs() == ['cams']
    ctx = StageContext(cfg=Config(dict(data=tiny_data_cfg)), work_dir=None, stage_dir=None)
    for empty in (None, {}):
        same = RefineLabels('labels', cams='cams', extra_cams=empty)
        assert same.options == plain.options and same.inputs() == ['cams']
        assert same.hash_payload(ctx) == plain.hash_payload(ctx)
    extra = RefineLabels('labels', cams='cams', extra_cams=dict(plain_cams='plain'))
    assert extra.options['extra_cams'] == dict(plain_cams='plain')
    assert extra.inputs() == ['cams', 'plain']
    assert extra.hash_payload(ctx) != plain.hash_payload(ctx)
    # the same stage twice is one input
    assert RefineLabels('l', cams='cams', extra_cams=dict(a='cams')).inputs() == ['cams']


@pytest.mark.parametrize('bad, match', [
    (['plain'], 'must be a dict'),
    ({'cams': 'x'}, 'would overwrite'),
    ({'label': 'x'}, 'would overwrite'),
    ({'sal iency': 'x'}, 'plain identifier'),
    ({'plain': ''}, 'must name a stage'),
    ({'a': 'x', 'a_class_ids': 'y'}, 'clash'),
])
def test_bad_extra_cams_are_refused(components, bad, match):
    from wsss_core.pipeline.refine_labels import RefineLabels
    with pytest.raises(StageError, match=match):
        RefineLabels('labels', cams='cams', extra_cams=bad)


def test_the_extra_stage_must_come_earlier(components, tiny_data_cfg, tmp_path):
    cfg = cfg_with(tiny_data_cfg, extra_cams=dict(plain='later'))
    cfg['stages'].append(dict(type='_ExtraCamsStubCams', name='later'))
    with pytest.raises(StageError, match="reads 'later', which is not an earlier stage"):
        Pipeline(Config(cfg), tmp_path)


# ----------------------------------------------------------------------------- the job
def test_chain_job_loads_extra_cams_into_the_sample(tmp_path):
    from wsss_core.refiners.parallel import RefineChainJob
    main = np.random.default_rng(0).random((2, 5, 6)).astype(np.float32)
    other = np.random.default_rng(1).random((1, 5, 6)).astype(np.float32)
    save_cam(tmp_path / 'main' / 'a.npz', main, [0, 2])
    save_cam(tmp_path / 'other' / 'a.npz', other, [1])
    dataset = SimpleNamespace(records=[SimpleNamespace(img_id='a')], num_classes=3)
    job = RefineChainJob(dataset, [], tmp_path / 'main', tmp_path / 'out',
                         extra_cam_dirs=dict(plain=str(tmp_path / 'other')))
    sample = job.sample(0)
    assert set(sample) == {'img_id', 'cams', 'class_ids', 'plain', 'plain_class_ids'}
    np.testing.assert_allclose(sample['plain'], other, atol=1e-3)  # stored as float16
    assert sample['plain'].dtype == np.float32
    assert sample['plain_class_ids'].tolist() == [1]
    assert sample['class_ids'].tolist() == [0, 2]
    plain_job = RefineChainJob(dataset, [], tmp_path / 'main', tmp_path / 'out')
    assert set(plain_job.sample(0)) == {'img_id', 'cams', 'class_ids'}


def test_chain_job_names_a_missing_extra_cam_file(tmp_path):
    from wsss_core.io import DataFileError
    from wsss_core.refiners.parallel import RefineChainJob
    save_cam(tmp_path / 'main' / 'a.npz', np.zeros((1, 2, 2)), [0])
    dataset = SimpleNamespace(records=[SimpleNamespace(img_id='a')], num_classes=3)
    job = RefineChainJob(dataset, [], tmp_path / 'main', tmp_path / 'out',
                         extra_cam_dirs=dict(plain=tmp_path / 'other'))
    with pytest.raises(DataFileError, match='other/a.npz'):
        job.sample(0)


# ----------------------------------------------------------------------------- pipeline
def test_pipeline_hands_the_extra_cams_to_the_chain(components, tiny_data_cfg, tmp_path):
    extra = dict(type='_ExtraCamsStubCams', name='plain_stage', seed=7)
    cfg = cfg_with(tiny_data_cfg, extra, extra_cams=dict(plain='plain_stage'), workers=0)
    res = run(cfg, tmp_path)
    manifest = res['labels'].manifest
    assert set(manifest['inputs']) == {'main', 'plain_stage'}
    assert manifest['counts'] == dict(images=16, computed=16)
    cam_dir = tmp_path / 'plain_stage' / 'cams'
    for npz in sorted(cam_dir.glob('*.npz')):
        maps, ids = load_cam(npz)
        label = read_label_png(tmp_path / 'labels' / 'labels' / f'{npz.stem}.png')
        np.testing.assert_array_equal(label, expected_label(maps, ids))

    # the extra stage's hash is upstream of the labels: changing it re-runs them
    assert {r.status for r in run(cfg, tmp_path).values()} == {'skipped'}
    cfg['stages'][1]['seed'] = 8
    again = run(cfg, tmp_path)
    assert again['plain_stage'].status == 'ran' and again['labels'].status == 'ran'
    assert again['main'].status == 'skipped'


def test_extra_stage_of_another_split_is_refused(components, tiny_data_cfg, tmp_path):
    extra = dict(type='_ExtraCamsStubCams', name='val_cams', split='val')
    cfg = cfg_with(tiny_data_cfg, extra, extra_cams=dict(plain='val_cams'))
    with pytest.raises(StageError, match=r"'val_cams' made CAMs of split 'val'.*"
                                         r"cams='main' covers split 'train'"):
        run(cfg, tmp_path)


def test_extra_stage_without_cams_is_refused_when_built(components, tiny_data_cfg, tmp_path):
    """A stage that does not declare a CAM set: refused before any stage runs."""
    extra = dict(type='_ExtraCamsStubCams', name='no_cams', artifact=None)
    cfg = cfg_with(tiny_data_cfg, extra, extra_cams=dict(plain='no_cams'))
    with pytest.raises(StageError, match=r"stage 'labels' \(RefineLabels\) reads "
                                         r"extra_cams='no_cams' as a CAM set.*stage 'no_cams' "
                                         r"\(StubCams\) produces no artifact"):
        run(cfg, tmp_path)
    assert not (tmp_path / 'main').exists()            # nothing ran


def test_extra_stage_that_recorded_no_cams_is_refused_when_read(components, tiny_data_cfg,
                                                                tmp_path):
    """A stage that declares a CAM set but recorded none (e.g. an old manifest): the one
    reader's error, naming the reading stage, the option and the stage."""
    extra = dict(type='_ExtraCamsStubCams', name='no_cams', artifact=None, declared=True)
    cfg = cfg_with(tiny_data_cfg, extra, extra_cams=dict(plain='no_cams'))
    with pytest.raises(StageError, match=r"\[labels\] extra_cams='no_cams': stage 'no_cams' "
                                         r"did not record a CAM set"):
        run(cfg, tmp_path)
