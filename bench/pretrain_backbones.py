"""Training throughput of the stand-in backbones for ShapeCorpus pretraining (issue 22).

For each backbone: a PretrainClassifier (the backbone, global pooling, a linear head over
``--classes`` classes) trained with AdamW on random 96 px batches, forward + backward + step,
``--iters`` timed iterations after ``--warmup``; reports images/s, the parameter count, the
ratio to the SmallResNet measured in the same run, and how many ShapeCorpus epochs
(``--corpus-images`` training images) fit the 20-minute pretraining budget of the issue.

    python bench/pretrain_backbones.py [--only small_resnet vgg16_oaa ...] [--batch 32]
"""
from __future__ import annotations

import argparse
import time

import torch

#: the stand-in backbones: the network each method starts from, narrowed for 2 CPU cores
BACKBONES = {
    'small_resnet': dict(type='SmallResNet'),
    'vgg16_oaa': dict(type='VGG16OAA', width_mult=0.25),
    'resnet38': dict(type='ResNet38', width_mult=1 / 8),
    'resnet50_irn': dict(type='TorchvisionResNet', depth=50, output_stride=16, width_mult=0.25),
    'vit_tiny': dict(type='GETAMViT', model_name='vit_tiny_patch16_224', img_size=96,
                     embed_dim=192, depth=12, num_heads=3),
    'vit_hybrid': dict(type='GETAMViT', model_name='vit_base_r50_s16_384', img_size=96,
                       embed_dim=192, depth=12, num_heads=3,
                       hybrid_resnet=dict(layers=(1, 1, 1), channels=(32, 64, 128),
                                          stem_chs=32, num_groups=8)),
}


def measure(cfg: dict, classes: int, batch: int, size: int, warmup: int, iters: int) -> dict:
    from wsss_core.registry import MODELS, build
    torch.manual_seed(0)
    model = build(dict(type='PretrainClassifier', backbone=dict(cfg), num_classes=classes),
                  MODELS).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    img = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    labels = torch.eye(classes)[torch.randint(0, classes, (batch,))]
    stamps = []
    for _ in range(warmup + iters):
        data = model.data_preprocessor(dict(img=img, labels=labels), training=True)
        loss = model(data['img'], data['labels'], mode='loss')['loss_cls']
        opt.zero_grad()
        loss.backward()
        opt.step()
        stamps.append(time.perf_counter())
    s_per_iter = (stamps[-1] - stamps[warmup - 1]) / iters
    return dict(img_per_s=batch / s_per_iter,
                params_m=sum(p.numel() for p in model.backbone.parameters()) / 1e6)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--only', nargs='+', choices=sorted(BACKBONES), default=list(BACKBONES))
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=96)
    p.add_argument('--classes', type=int, default=96)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--corpus-images', type=int, default=24000)
    p.add_argument('--budget-min', type=float, default=20.0)
    args = p.parse_args(argv)
    from wsss_core.plugin_loader import load_plugins
    load_plugins()
    names = ['small_resnet'] + [n for n in args.only if n != 'small_resnet']
    rows = {n: measure(BACKBONES[n], args.classes, args.batch, args.size, args.warmup,
                       args.iters) for n in names}
    base = rows['small_resnet']['img_per_s']
    print(f'{torch.get_num_threads()} torch threads, batch {args.batch} x {args.size} px, '
          f'{args.classes} classes; budget {args.budget_min:g} min of '
          f'{args.corpus_images} images per epoch')
    print(f'{"backbone":14s} {"params M":>9s} {"img/s":>8s} {"vs small":>9s} {"epochs":>7s}')
    for name, r in rows.items():
        epochs = r['img_per_s'] * args.budget_min * 60 / args.corpus_images
        print(f'{name:14s} {r["params_m"]:9.2f} {r["img_per_s"]:8.1f} '
              f'{r["img_per_s"] / base:9.3f} {epochs:7.1f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
