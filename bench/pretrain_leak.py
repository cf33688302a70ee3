"""The leak of ShapeCorpus pretraining into SyntheticShapes, by linear probe (issue 22).

How much of SyntheticShapes' image labels do frozen features already hold: the linear probe
(:mod:`wsss_core.evaluation.linear_probe`) of a pretrained backbone against the probe of the
same network with random weights (seeded), on the same images, measured in the same run:

    python bench/pretrain_leak.py WORK_DIR/pretrain [--train 1000] [--val 500]

WORK_DIR/pretrain is a finished Pretrain stage (its manifest names the cached weights and the
backbone config).  SyntheticShapes defaults (96 px, 6 classes) unless --generator-seed /
--image-size / --num-classes say otherwise.  Prints the probe mAP of both and their
difference; ``--json`` writes them.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('stage_dir', help='a finished Pretrain stage directory')
    p.add_argument('--train', type=int, default=1000, help='training images for the probe')
    p.add_argument('--val', type=int, default=500, help='validation images scored')
    p.add_argument('--generator-seed', type=int, default=0)
    p.add_argument('--image-size', type=int, default=96)
    p.add_argument('--num-classes', type=int, default=6)
    p.add_argument('--json', help='write the figures here')
    args = p.parse_args(argv)

    from wsss_core.datasets import build_dataset
    from wsss_core.evaluation.linear_probe import linear_probe_map, probe_features
    from wsss_core.pipeline.manifest import read_manifest
    from wsss_core.plugin_loader import load_plugins
    from wsss_core.registry import MODELS, build
    load_plugins()
    manifest = read_manifest(Path(args.stage_dir))
    art = manifest['artifacts']
    backbone_cfg = dict(art['backbone'])
    from wsss_core.models.weights import pretrained_option
    from wsss_core.registry import lookup
    option = pretrained_option(lookup(MODELS, backbone_cfg['type']))
    data = dict(type='SyntheticShapes', progress=False,
                generator=dict(seed=args.generator_seed, image_size=args.image_size,
                               num_classes=args.num_classes))
    train = build_dataset(data, split='train', load_gt=False, max_samples=args.train)
    val = build_dataset(data, split='val', load_gt=False, max_samples=args.val)
    rows = {}
    for name, cfg in (('pretrained', dict(backbone_cfg, **{option: art['backbone_weights']})),
                      ('random', backbone_cfg)):
        torch.manual_seed(0)
        net = build(cfg, MODELS)
        prefix = int(getattr(net, 'num_prefix_tokens', 0))
        t0 = time.perf_counter()
        feats_t = probe_features(net, train, num_prefix_tokens=prefix)
        feats_v = probe_features(net, val, num_prefix_tokens=prefix)
        rows[name] = dict(linear_probe_map(feats_t, feats_v), seconds=time.perf_counter() - t0,
                          dim=int(feats_t[0].shape[1]))
    print(f"{backbone_cfg['type']} from {art['backbone_weights']}; probe on {len(train)} "
          f'SyntheticShapes training images, mAP on {len(val)} val images '
          f'(generator seed {args.generator_seed}, {args.num_classes} classes)')
    for name, r in rows.items():
        print(f"  {name:10s} features {r['dim']:4d}-d: val mAP {r['mAP']:.4f}  "
              f"(train mAP {r['train_mAP']:.4f}, {r['seconds']:.0f} s)")
    print(f"  pretrained - random: {rows['pretrained']['mAP'] - rows['random']['mAP']:+.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(backbone=backbone_cfg, rows=rows), indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
