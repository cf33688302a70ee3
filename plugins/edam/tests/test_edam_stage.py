"""TrainPairClassifier in a real run on tiny SyntheticShapes: EDAMClassifier trained on pair
batches (2P images, rows 2p / 2p + 1 sharing a class, in the pair list's order), validation on
single images, and the pair count / passes in the manifest."""
from __future__ import annotations

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from wsss_edam.testing import TINY_GENERATOR, registered  # noqa: F401 (fixture)

DATA = dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False)
TINY_BACKBONE = dict(type='SmallResNet', widths=(8, 8, 16, 16))
TINY_CMA = dict(embed_dims=16, num_heads=2, ffn_dims=32)
SEEN = []


class PairSpyHook(Hook):
    """Records every training batch the model is given."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        SEEN.append(dict(shape=tuple(data_batch['img'].shape), labels=data_batch['labels'].clone(),
                         img_id=list(data_batch['img_id'])))


def stage_cfg(**kw):
    return dict(dict(type='TrainPairClassifier', name='classify', max_epochs=1, batch_size=2,
                     passes=2, log_interval=100, custom_hooks=[dict(type='PairSpyHook')],
                     model=dict(type='EDAMClassifier', backbone=dict(TINY_BACKBONE),
                                cma=dict(TINY_CMA))), **kw)


@pytest.fixture(scope='module')
def finished(tmp_path_factory, registered):  # noqa: F811
    from wsss_core.pipeline import Pipeline
    from wsss_core.registry import HOOKS
    HOOKS.register_module(module=PairSpyHook, force=True)
    SEEN.clear()
    work_dir = tmp_path_factory.mktemp('edam_stage')
    torch.manual_seed(0)
    cfg = dict(seed=0, data=dict(DATA), stages=[stage_cfg()])
    results = {r.name: r for r in Pipeline(Config(cfg), work_dir, progress=False).run()}
    return work_dir, results['classify'].manifest, list(SEEN)


def test_the_model_saw_2p_batches_of_pairs_sharing_a_class(finished):
    _, _, seen = finished
    n_pairs = 2 * TINY_GENERATOR['num_train']            # no tiny image lacks a partner
    assert len(seen) == n_pairs // 2                     # batch_size = 2 pairs
    for batch in seen:
        assert batch['shape'] == (4, 3, 48, 48)          # 2P images
        y = batch['labels']
        for p in range(2):
            assert (y[2 * p] * y[2 * p + 1]).sum() >= 1, batch['img_id']


def test_batches_follow_the_recorded_pair_list(finished):
    from wsss_core.datasets import build_dataset
    from wsss_edam.datasets.image_pairs import sample_pairs
    work_dir, _, seen = finished
    lines = (work_dir / 'classify' / 'pairs.txt').read_text().splitlines()
    listed = [tuple(ln.split()[:2]) for ln in lines]
    walked = [tuple(b['img_id'][k:k + 2]) for b in seen for k in (0, 2)]
    assert walked == listed                              # the list's order, unshuffled
    images = build_dataset(DATA, split='train', load_gt=False)
    ids = images.img_ids
    expected = sample_pairs([r.class_ids for r in images.records], passes=2, seed=0)
    assert listed == [(ids[i], ids[j]) for i, j in expected]   # pair_seed = the run's seed


def test_manifest_records_pairs_passes_and_validation(finished):
    work_dir, manifest, _ = finished
    n = TINY_GENERATOR['num_train']
    assert manifest['counts']['train_images'] == n
    assert manifest['counts']['train_pairs'] == 2 * n
    assert manifest['counts']['val_images'] == TINY_GENERATOR['num_val']
    assert manifest['pairs'] == dict(count=2 * n, passes=2, seed=0, unpaired_images=0,
                                     list='pairs.txt')
    assert 'cls/mAP' in manifest['metrics']             # single-image validation ran
    assert manifest['artifacts']['model']['type'] == 'EDAMClassifier'
    assert (work_dir / 'classify' / 'model.pth').is_file()


def test_options_are_checked_and_defaults_set(registered):  # noqa: F811
    from wsss_core.registry import STAGES, build
    stage = build(dict(stage_cfg(), custom_hooks=[]), STAGES)
    assert stage.options['sampler'] == dict(type='PairEpochSampler')
    assert stage.options['passes'] == 2 and stage.options['pair_seed'] is None
    with pytest.raises(ValueError, match='passes'):
        build(dict(stage_cfg(), custom_hooks=[], passes=0), STAGES)


def test_pair_loader_and_2p_image_val_loader(registered):  # noqa: F811
    from types import SimpleNamespace

    from wsss_core.registry import STAGES, build
    from wsss_edam.datasets.image_pairs import ImagePairs

    class TwoImages(list):
        records = [SimpleNamespace(class_ids=(0,)), SimpleNamespace(class_ids=(0, 1))]

    stage = build(dict(stage_cfg(), custom_hooks=[]), STAGES)
    pairs = ImagePairs(TwoImages([{}, {}]))
    train = stage.dataloader(pairs, 2, True, stage.options['sampler'])
    assert train['batch_size'] == 2 and train['collate_fn'] == dict(type='collate_pairs')
    assert train['sampler'] == dict(type='PairEpochSampler')
    val = stage.dataloader(list(range(8)), 2, False)
    assert val['batch_size'] == 4 and val['collate_fn'] == dict(type='default_collate')
