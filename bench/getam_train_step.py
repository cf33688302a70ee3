"""Benchmark: GETAM's training step in the classification phase and in the joint phase.

One step = ``model.train_step`` through an mmengine ``OptimWrapper`` (SGD), on a random batch
of uint8 images with image labels (about 1.5 classes per image), saliency maps and the crop's
valid mask, the model built as ``GETAMNet`` with the phase set by hand:

- ``cls``: multilabel soft-margin loss on the class logits (one forward, one backward);
- ``joint``: the GETAM maps of the labelled classes (a class-only forward with the first
  ``start_layer`` blocks outside autograd, batched gradient rounds), PAMR (10 iterations),
  the online pseudo labels, then the training forward of both heads and the backward of
  classification + split CE + saliency BCE + dense-CRF energy (bilateral grid).

Two model sizes: ``tiny`` (the synthetic config's: ViT-Tiny-sized, 96 px, batch 16) and
``base`` (the VOC config's ViT-B/16 hybrid, 256 px, batch 4, random weights).  It prints the
median step time of each phase and their ratio, measured in the same run, and writes JSON.

    .venv/bin/python bench/getam_train_step.py [--sizes tiny base] [--repeats 3]
        [--threads 2] [--device cpu] [--json bench/out/getam_train_step.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

SIZES = {
    'tiny': dict(crop=96, batch=16, classes=6, features=64,
                 backbone=dict(type='GETAMViT', model_name='vit_tiny_patch16_224', img_size=96,
                               embed_dim=192, depth=12, num_heads=3)),
    'base': dict(crop=256, batch=4, classes=20, features=256,
                 backbone=dict(type='GETAMViT', model_name='vitb_hybrid', img_size=256)),
}


def make_batch(size: dict, device: str, seed: int = 0) -> dict:
    import torch
    g = torch.Generator().manual_seed(seed)
    b, s, c = size['batch'], size['crop'], size['classes']
    labels = torch.zeros(b, c)
    for i in range(b):   # one class, a second one for every other image: 1.5 on average
        labels[i, torch.randint(c, (1,), generator=g)] = 1
        if i % 2:
            labels[i, torch.randint(c, (1,), generator=g)] = 1
    saliency = torch.zeros(b, s, s, dtype=torch.long)
    saliency[:, s // 4:3 * s // 4, s // 4:3 * s // 4] = 255
    return dict(img=torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, generator=g),
                labels=labels, saliency=saliency, valid=torch.ones(b, s, s, dtype=torch.long))


def measure(name: str, device: str, repeats: int) -> dict:
    import torch
    from mmengine.optim import OptimWrapper
    from wsss_core.plugin_loader import load_plugins
    from wsss_core.registry import MODELS, build
    load_plugins(enabled=['deeplab', 'getam'])
    size = SIZES[name]
    torch.manual_seed(0)
    model = build(dict(type='GETAMNet', num_classes=size['classes'], features=size['features'],
                       backbone=size['backbone']), MODELS).to(device).train()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-4))
    batch = make_batch(size, device)
    out = {}
    for phase in ('cls', 'joint'):
        model.phase = phase
        times = []
        for i in range(repeats + 1):
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.train_step(dict(batch), wrapper)
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            if i:                      # the first step warms up
                times.append(time.perf_counter() - t0)
        out[phase] = statistics.median(times)
    out['joint_over_cls'] = out['joint'] / out['cls']
    out.update(batch=size['batch'], crop=size['crop'])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', default=['tiny', 'base'], choices=sorted(SIZES))
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--json', default='bench/out/getam_train_step.json')
    args = parser.parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    import torch
    torch.set_num_threads(args.threads)
    results = {name: measure(name, args.device, args.repeats) for name in args.sizes}
    print(f'{"model":<6} {"batch":>5} {"crop":>5} {"cls s/step":>11} {"joint s/step":>13} '
          f'{"joint/cls":>10}')
    for name, r in results.items():
        print(f'{name:<6} {r["batch"]:>5} {r["crop"]:>5} {r["cls"]:>11.3f} {r["joint"]:>13.3f} '
              f'{r["joint_over_cls"]:>9.2f}x')
    os.makedirs(os.path.dirname(args.json) or '.', exist_ok=True)
    with open(args.json, 'w') as f:
        json.dump(dict(device=args.device, threads=args.threads, torch=torch.__version__,
                       results=results), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
