"""The stand-in configs run end to end on SyntheticShapes of other image sizes.

Issue 22's variant check changes only the data generator (seed, class count, image size) of
the shipped configs. A size that is not a multiple of a network's stride or patch once crashed
GETAM's validation after 50 minutes of training (104 px, session 12). Here every stage of the
zoo (every method from its stand-in; ``configs/zoo.py``) and of the plain-ViT GETAM, which the
zoo leaves out, runs on 8 + 4 images of sizes that are multiples of neither 8 nor 32, shrunk
by counts alone (:func:`wsss_core.testing.shrink.count_shrink`): crops, resizes, network
widths and test scales are the shipped ones.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from wsss_core.testing.shrink import count_shrink, count_shrink_options, is_validation_test

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def plugins():
    from wsss_core.plugin_loader import load_plugins
    load_plugins()


def _run_shrunk(spec: str, image_size: int, work_dir: Path) -> dict:
    """Run ``spec`` shrunk by counts on a 3-class SyntheticShapes of ``image_size`` px;
    ``{stage name: manifest}``."""
    from wsss_core.config import load_config, merge_options
    from wsss_core.pipeline import Pipeline
    cfg = load_config(spec)
    options = count_shrink_options(cfg.to_dict()['stages'])
    options['data.generator'] = dict(image_size=image_size, num_classes=3, seed=1, num_train=8,
                                     num_val=4)
    options['data.progress'] = False
    results = Pipeline(merge_options(cfg, options), work_dir, progress=False).run()
    return {r.name: json.loads((work_dir / r.name / 'manifest.json').read_text())
            for r in results}


def _check_finished(manifests: dict, spec: str) -> None:
    from wsss_core.config import load_config
    names = [s['name'] for s in load_config(spec).to_dict()['stages']]
    assert sorted(manifests) == sorted(names)
    for name, manifest in manifests.items():
        assert manifest['status'] == 'complete', name
        for key, value in (manifest.get('metrics') or {}).items():
            if key.split('/')[-1] in ('miou', 'miou_crf', 'miou_raw', 'mAP', 'oracle_miou'):
                assert 0.0 <= value <= 1.0, (name, key, value)


@pytest.mark.parametrize('image_size', [76, 130])
def test_every_zoo_stage_runs_on_images_of_another_size(image_size, plugins, tmp_path):
    spec = str(REPO / 'configs' / 'zoo.py')
    from wsss_core.config import load_config
    manifests = _run_shrunk(spec, image_size, tmp_path)
    _check_finished(manifests, spec)
    # the segmentation tests on the validation images ran on them at full size
    tests = [s['name'] for s in load_config(spec).to_dict()['stages'] if is_validation_test(s)]
    assert tests and all(manifests[n]['counts']['evaluated'] == 2 for n in tests)


def test_plain_vit_getam_runs_on_images_of_another_size(plugins, tmp_path):
    spec = 'getam::synthetic_pretrained.py'
    manifests = _run_shrunk(spec, 84, tmp_path)
    _check_finished(manifests, spec)
    assert 0.0 <= manifests['getam']['metrics']['cls/mAP'] <= 1.0      # validated at 84 px


def test_count_shrink_leaves_sizes_alone_and_refuses_unknown_stage_types():
    stage = dict(name='deeplab', type='TrainSegmentor', max_iters=750, batch_size=10,
                 crop_size=96, model=dict(type='DeepLabV2'))
    assert count_shrink(stage) == dict(max_iters=2, batch_size=2, iter_size=1, num_workers=0,
                                       log_interval=1)
    pretrain = count_shrink(dict(name='p', type='Pretrain',
                                 corpus=dict(generator=dict(image_size=64))))
    assert pretrain['corpus.generator.train_per_class'] == 2
    assert 'corpus.generator.image_size' not in pretrain
    with pytest.raises(KeyError, match="no shrink rule for stage type 'NewStage'"):
        count_shrink(dict(name='x', type='NewStage'))
