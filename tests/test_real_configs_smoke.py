"""Every shipped real-data config runs end to end: ``wsss-run CONFIG`` on a mini data root in
the real layouts (:mod:`wsss_core.testing.item_roots`: a dozen images of real sizes per data
set, palette masks, the split lists, label files, saliency maps) with stand-in weight files
of the items' names, keys and shapes, the config shrunk only by counts and sizes through
``--cfg-options`` (epochs, iterations, batch sizes, crops, network widths that the stand-in
weights fit, workers).

A real-data config is a shipped config with stages that names an ``item:``; each must have a
shrink recipe in :data:`SHRINKS` (``_fixed`` variants share their base's), so a new one cannot
escape this test.
"""
from __future__ import annotations

import json
import time
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

pytest.importorskip('scipy')        # SBD's .mat masks (the 'prepare' extra)
pytest.importorskip('safetensors')  # timm's weight files

from wsss_core.testing import item_roots  # noqa: E402
from wsss_core.testing.item_roots import STANDIN_NETWORKS, timm_standin_backbone  # noqa: E402
from wsss_core.testing.shrink import count_shrink, flat_items as _flat  # noqa: E402

#: the network input sizes of the shrunk runs
CROP = 64


# ----------------------------------------------------------------------------- addressing
def stage_index(cfg: dict, name: str) -> int:
    """The position of the stage called ``name`` in ``cfg['stages']``."""
    names = [s['name'] for s in cfg['stages']]
    if name not in names:
        raise KeyError(f'no stage {name!r}; stages: {names}')
    return names.index(name)


def stage_key(cfg: dict, name: str) -> str:
    """The ``--cfg-options`` prefix of the stage called ``name``: ``stages.<name>`` (a stage
    is addressed by name in either form of ``stages``; the name must exist)."""
    stage_index(cfg, name)
    return f'stages.{name}'


def option(value) -> str:
    """A value as ``--cfg-options`` parses it back (mmengine's DictAction)."""
    if isinstance(value, (list, tuple)):
        inner = ','.join(option(v) for v in value)
        if isinstance(value, list):
            return f'[{inner}]'
        return f'({inner},)' if len(value) == 1 else f'({inner})'
    if isinstance(value, float):
        return repr(value)
    return str(value)


# ----------------------------------------------------------------------------- shrinking
def weight_networks(model: dict, path: str = 'model') -> Iterator[Tuple[str, dict]]:
    """``(key path, cfg)`` of every network in ``model`` that loads a weight item."""
    for key, value in model.items():
        if isinstance(value, dict):
            yield from weight_networks(value, f'{path}.{key}')
    if any(isinstance(v, str) and v.startswith('item:') for v in model.values()):
        yield path, model


def network_shrink(path: str, net: dict) -> Dict[str, object]:
    """The options that build the stand-in's network (:data:`STANDIN_NETWORKS`) from
    ``net``, a network that loads a weight item."""
    ref = next(v for v in net.values() if isinstance(v, str) and v.startswith('item:'))
    standin = STANDIN_NETWORKS[ref[len('item:'):]]
    if standin['type'] == 'GETAMViT':
        keep = timm_standin_backbone(net['model_name'])
    elif standin['type'] == 'DeepLabV2':           # a whole-segmentor init: its ResNet
        keep = {'backbone': {k: standin['backbone'][k] for k in ('layers', 'base_width')}}
    elif standin['type'] == 'DeepLabResNet':
        keep = {k: standin[k] for k in ('layers', 'base_width')}
    else:                                          # width_mult, or nothing (ResNet-50)
        keep = {k: v for k, v in standin.items() if k not in ('type', 'depth')}
    return {f'{path}.{k}': v for k, v in _flat(keep)}


def transform_index(pipeline: List[dict], kind: str) -> int:
    return next(i for i, t in enumerate(pipeline) if t['type'] == kind)


def pipeline_shrink(pipeline: List[dict]) -> Dict[str, object]:
    """Training transforms at :data:`CROP` pixels (a crop after a fixed-size resize keeps
    its ratio to it, as 224 of 256)."""
    out: Dict[str, object] = {}
    resized = None
    for i, t in enumerate(pipeline or ()):
        if t['type'] == 'Resize' and 'short_side' in t:
            out[f'pipeline.{i}.short_side'] = CROP
        elif t['type'] == 'Resize' and 'size' in t:
            out[f'pipeline.{i}.size'] = (CROP, CROP)
            resized = (t['size'][0], CROP)
        elif t['type'] == 'RandomLongSide':
            out.update({f'pipeline.{i}.low': CROP, f'pipeline.{i}.high': 3 * CROP // 2})
        elif t['type'] == 'RandomPadCrop':
            out[f'pipeline.{i}.size'] = (CROP if resized is None else
                                         t['size'] * resized[1] // resized[0])
    return out


def model_shrink(model: dict) -> Dict[str, object]:
    """Head widths of the method models (no weights are loaded into them)."""
    kind = model.get('type')
    if kind in ('OAAClassifier', 'IntegralAttentionModel', 'NSROMClassifier', 'OACAMModel'):
        out = {'model.head_channels': 16}
        if kind in ('NSROMClassifier', 'OACAMModel'):
            out['model.num_nodes'] = 8
        return out
    if kind == 'EDAMClassifier':
        return {'model.cma.embed_dims': 16, 'model.cma.ffn_dims': 32}
    if kind == 'GETAMNet':
        return {'model.features': 16, 'model.test_sizes': [CROP]}
    if kind == 'DeepLabV3Plus':
        return {'model.aspp_channels': 16, 'model.low_level_channels': 8,
                'model.decoder_channels': 16}
    return {}


def stage_shrink(stage: dict) -> Dict[str, object]:
    """Counts (:func:`~wsss_core.testing.shrink.count_shrink`) and sizes of one stage, by its
    type (keys relative to the stage; a loaded config's stage holds all its options, a recipe
    fragment's included)."""
    full = stage
    kind = stage['type']
    out: Dict[str, object] = dict(count_shrink(stage))
    model = full.get('model')
    if isinstance(model, dict):
        out.update(model_shrink(model))
        for path, net in weight_networks(model):
            out.update(network_shrink(path, net))
    if kind in ('TrainClassifier', 'TrainIntegralAttention', 'TrainPairClassifier'):
        out.update(pipeline_shrink(full.get('pipeline')))
    elif kind == 'TrainSegmentor':
        out.update(crop_size=CROP)
    elif kind == 'TrainGETAM':
        out.update(crop=CROP, long_side=(CROP - 8, CROP + 8))
    elif kind == 'TrainIRN':
        out.update(crop=2 * CROP)
    elif kind == 'MakeCAMs':      # the image resized as in training (it is full size if not)
        resize = full.get('resize') or {}
        out['resize'] = {'size': (CROP, CROP)} if 'size' in resize else {'short_side': CROP}
    elif kind == 'EvaluateWSOL':
        out.update(image_size=CROP)
    return out


def shrink_overrides(cfg: dict) -> List[str]:
    """``--cfg-options`` of a loaded config: every stage shrunk by :func:`stage_shrink`,
    addressed by name through :func:`stage_key`."""
    out = []
    for stage in cfg['stages']:
        prefix = stage_key(cfg, stage['name'])
        for key, value in stage_shrink(stage).items():
            if isinstance(value, dict):
                out += [f'{prefix}.{key}.{k}={option(v)}' for k, v in _flat(value)]
            else:
                out.append(f'{prefix}.{key}={option(value)}')
    return out


# ----------------------------------------------------------------------------- the configs
def real_data_configs() -> List[str]:
    """Every shipped config with stages that names an item (data or weights)."""
    from wsss_core.config import load_config, shipped_configs
    from wsss_core.prepare.refs import find_item_refs
    out = []
    for spec, _ in shipped_configs():
        cfg = load_config(spec).to_dict()
        if cfg.get('stages') and next(find_item_refs(cfg), None) is not None:
            out.append(spec)
    return out


def base_of(spec: str) -> str:
    """``oaa::voc12_vgg16_fixed.py`` -> ``oaa::voc12_vgg16.py``: a variant's shrink recipe is
    its base's."""
    return spec.replace('_fixed.py', '.py')


def generic(cfg: dict) -> Dict[str, dict]:
    return {}


#: the shrink recipe of each real-data config: :func:`shrink_overrides` plus the extra
#: ``{stage name: {key: value}}`` it needs
SHRINKS: Dict[str, Callable[[dict], Dict[str, dict]]] = {
    'deeplab::voc12_deeplabv2_r101.py': generic,
    'deeplab::voc12_deeplabv3plus_r101.py': generic,
    'edam::voc12_resnet38.py': generic,
    'getam::coco14_vitb_hybrid.py': generic,
    'getam::voc12_deit.py': generic,
    'getam::voc12_deit_distilled.py': generic,
    'getam::voc12_vitb.py': generic,
    'getam::voc12_vitb_hybrid.py': generic,
    'moana::cub_resnet50_wsol.py': generic,
    'moana::ilsvrc_resnet50_wsol.py': generic,
    'moana::voc12_resnet50_irn.py': generic,
    'oaa::voc12_vgg16.py': generic,
    'oaa::voc12_vgg16_drop.py': generic,
    'oaa::voc12_vgg16_iam.py': generic,
    'nsrom::voc12_vgg16_deeplabv2.py': generic,
}

REAL_CONFIGS = real_data_configs()


def overrides_for(spec: str) -> List[str]:
    from wsss_core.config import load_config
    cfg = load_config(spec).to_dict()
    out = shrink_overrides(cfg)
    for name, extra in SHRINKS[base_of(spec)](cfg).items():
        prefix = stage_key(cfg, name)
        out += [f'{prefix}.{k}={option(v)}' for k, v in _flat(extra)]
    return out


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    """The mini data and weight roots, written once."""
    return item_roots.write_roots(tmp_path_factory.mktemp('item_roots'))


def test_stages_are_addressed_by_name():
    cfg = {'stages': [{'name': 'classify'}, {'name': 'cams'}, {'name': 'test'}]}
    assert stage_key(cfg, 'test') == 'stages.test'
    with pytest.raises(KeyError, match="no stage 'deeplab'"):
        stage_key(cfg, 'deeplab')
    assert [option(v) for v in ((1, 1), (64,), [64], 0.0625, 'raw_rgb')] == \
        ['(1,1)', '(64,)', '[64]', '0.0625', 'raw_rgb']


def test_every_real_data_config_has_a_shrink_recipe():
    missing = sorted({base_of(s) for s in REAL_CONFIGS} - set(SHRINKS))
    assert not missing, f'real-data configs without a shrink recipe in this test: {missing}'
    stale = sorted(set(SHRINKS) - set(REAL_CONFIGS))
    assert not stale, f'shrink recipes of configs that are not shipped: {stale}'


def test_mini_data_root_reads_as_the_real_layout(roots):
    """The readers see what the layout module promises: the merge's train_aug, VOC's val,
    image sizes, labels from cls_labels.npy equal to the masks', COCO and WSOL splits."""
    from wsss_core.datasets.coco14 import COCO2014
    from wsss_core.datasets.voc12 import VOC2012
    from wsss_core.wsol.metadata import WSOLMetadata
    from wsss_core.prepare.items import all_items
    from wsss_core.prepare.ledger import item_status
    data, _ = roots
    items = all_items()
    assert {n for n, i in items.items() if i.root == 'data'} == set(item_roots.DATA_ITEMS)
    for name in item_roots.DATA_ITEMS:     # present, no ledger: usable
        assert item_status(items[name], root=data)[0] == 'unverified', name
    voc = data / 'VOCdevkit' / 'VOC2012'
    train = VOC2012(voc, 'train_aug', labels_from='cls_labels_npy', label_cache=False,
                    saliency_dir='saliency_aug')
    assert tuple(train.img_ids) == item_roots.TRAIN_AUG
    masks = VOC2012(voc, 'train_aug', labels_from='masks', label_cache=False)
    sizes = dict(zip(item_roots.VOC_TRAIN + item_roots.VOC_VAL + item_roots.SBD_ONLY,
                     item_roots.VOC_SIZES))
    for i, img_id in enumerate(train.img_ids):
        sample = train.load_sample(i)
        assert sample['img'].shape == (sizes[img_id][1], sizes[img_id][0], 3)
        assert sample['saliency'].shape == sample['img'].shape[:2]
        assert (sample['labels'] == masks.load_sample(i)['labels']).all()
    val = VOC2012(voc, 'val', saliency_dir='saliency_aug', label_cache=False)
    assert tuple(val.img_ids) == item_roots.VOC_VAL
    assert 255 in val.load_sample(0)['gt_seg']               # VOC's void boundary band
    coco = COCO2014(data / 'coco2014', 'train', label_cache=False)
    assert tuple(coco.img_ids) == item_roots.COCO_TRAIN
    assert len(COCO2014(data / 'coco2014', 'val', label_cache=False)) == len(item_roots.COCO_VAL)
    for name, classes in (('CUB', 200), ('ILSVRC', 1000)):
        test = WSOLMetadata(data / 'wsol', name=name, split='test', num_classes=classes)
        assert len(test) == item_roots.WSOL_TEST
        sample = test.load_sample(0)
        h, w = sample['img'].shape[:2]
        x0, y0, x1, y1 = sample['gt_boxes'][0]
        assert 0 <= x0 < x1 < w and 0 <= y0 < y1 < h


@pytest.mark.parametrize('item', sorted(STANDIN_NETWORKS))
def test_standin_weights_fill_every_weight_of_the_shrunk_network(item, roots, monkeypatch):
    """Loaded through the item reference into the network the shrunk configs build, a
    stand-in leaves no weight at its initial value (no missing key, no shape skipped)."""
    import torch
    from wsss_core.registry import MODELS, build
    _, weights = roots
    monkeypatch.setenv('WSSS_WEIGHTS', str(weights))
    cfg = dict(STANDIN_NETWORKS[item])
    key = 'init_checkpoint' if cfg['type'] == 'DeepLabV2' else \
        'checkpoint' if cfg['type'] == 'GETAMViT' else 'pretrained'
    cfg[key] = f'item:{item}'
    net = build(cfg, MODELS)
    loaded = net.vit.state_dict() if cfg['type'] == 'GETAMViT' else net.state_dict()
    standin = item_roots.standin_state(item)
    assert getattr(net, 'missing_keys', []) == []
    for name, value in loaded.items():
        if name.endswith('num_batches_tracked') or name.startswith('decode_head.'):
            continue      # the COCO head (91 classes) does not fit a VOC head: not loaded
        assert torch.equal(value, standin[name]), name


@pytest.mark.parametrize('spec', REAL_CONFIGS)
def test_real_data_config_runs_end_to_end(spec, roots, tmp_path, monkeypatch):
    from wsss_core.cli import main
    from wsss_core.config import load_config
    data, weights = roots
    monkeypatch.setenv('WSSS_DATA', str(data))
    monkeypatch.setenv('WSSS_WEIGHTS', str(weights))
    work = tmp_path / 'work'
    start = time.perf_counter()
    code = main([spec, '--work-dir', str(work), '--no-progress',
                 '--cfg-options', *overrides_for(spec)])
    elapsed = time.perf_counter() - start
    assert code == 0, f'{spec} failed'
    names = [s['name'] for s in load_config(spec).to_dict()['stages']]
    manifests = {n: json.loads((work / n / 'manifest.json').read_text()) for n in names}
    fractions = [(name, key, value) for name, m in manifests.items()
                 for key, value in _flat(m.get('metrics') or {})
                 if key.split('.')[-1].startswith(('miou', 'fw_iou', 'pixel_accuracy'))
                 and isinstance(value, float)]
    assert fractions or names[-1].startswith('wsol'), 'no mIoU recorded'
    for name, key, value in fractions:
        assert 0.0 <= value <= 1.0, (name, key, value)
    print(f'{spec}: {elapsed:.1f} s')
