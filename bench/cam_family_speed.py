"""Benchmark: images/s of every CAM method, and batched Grad-CAM vs a per-(image, class) loop.

SmallResNet (default widths), 6 classes, eval mode, random images.  Part 1 runs each
generator through ``multiscale_cams`` (scales 1.0, 0.5, 1.5, 2.0 + flip, as MakeCAMs does)
in batches of ``--batch``.  Part 2 compares, at one scale without flip, batched Grad-CAM
(one forward per batch, one backward per class) with the naive loop that runs a forward
and a backward per (image, class), and prints the largest difference (they must agree).

    .venv/bin/python bench/cam_family_speed.py [--images 16] [--size 96] [--batch 8] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import torch


def best_rate(fn, images: int, repeats: int) -> tuple:
    out = fn()  # warm-up
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return images / best, out


def generators(args):
    from wsss_core.cams import CAM
    from wsss_core.cams.gradient import GradCAM, GradCAMPlusPlus, LayerCAM
    from wsss_core.cams.score_cam import ScoreCAM
    gens = {'CAM': CAM(), 'GradCAM': GradCAM(), 'GradCAMPlusPlus': GradCAMPlusPlus(),
            'LayerCAM': LayerCAM(), f'ScoreCAM top_k={args.top_k}': ScoreCAM(top_k=args.top_k)}
    if args.full_score_cam:
        gens['ScoreCAM (all channels)'] = ScoreCAM()
    try:
        from wsss_core.cams.pytorch_grad_cam_adapter import GradCAMPackage
        gens['GradCAMPackage GradCAM'] = GradCAMPackage(method='GradCAM')
    except ImportError as err:
        print(f'  (GradCAMPackage skipped: {str(err).splitlines()[0][:80]}...)')
    return gens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=16)
    p.add_argument('--size', type=int, default=96)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--classes', type=int, default=6)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--top-k', type=int, default=32)
    p.add_argument('--full-score-cam', action='store_true', help='also Score-CAM on all channels')
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from wsss_core.cams import DEFAULT_SCALES, multiscale_cams
    from wsss_core.cams.gradient import GradCAM
    from wsss_core.components import register_core_components
    from wsss_core.models.cam_classifier import CAMClassifier
    register_core_components()
    torch.manual_seed(0)
    model = CAMClassifier(backbone=dict(type='SmallResNet'), num_classes=args.classes).eval()
    images = torch.randn(args.images, 3, args.size, args.size)
    b = args.batch

    print(f'CAM family, SmallResNet ({model.backbone.out_channels} channels), {args.classes} '
          f'classes, {args.images} images {args.size}px, batch {b}, {args.threads} threads, '
          f'best of {args.repeats}')
    print(f'1) multiscale_cams, scales {DEFAULT_SCALES} + flip, all classes:')
    for name, gen in generators(args).items():
        def run(gen=gen):
            with torch.inference_mode(not gen.needs_grad):
                return torch.cat([multiscale_cams(gen, model, images[i:i + b])
                                  for i in range(0, args.images, b)])
        rate, _ = best_rate(run, args.images, args.repeats)
        print(f'  {name:26s}: {rate:8.2f} img/s')

    gen = GradCAM()

    def batched():
        return torch.cat([gen(model, images[i:i + b]) for i in range(0, args.images, b)])

    def loop():
        return torch.cat([torch.cat([gen(model, images[i:i + 1], class_ids=[[c]])
                                     for c in range(args.classes)], 0).sum(0, keepdim=True)
                          for i in range(args.images)])

    def two_classes():   # the class_ids fast path: 2 ground-truth classes per image
        ids = [[i % args.classes, (i + 1) % args.classes] for i in range(b)]
        return torch.cat([gen(model, images[i:i + b], class_ids=ids[:len(images[i:i + b])])
                          for i in range(0, args.images, b)])

    print('2) Grad-CAM, scale 1.0, no flip, all classes:')
    r_batch, out_b = best_rate(batched, args.images, args.repeats)
    r_two, _ = best_rate(two_classes, args.images, args.repeats)
    r_loop, out_l = best_rate(loop, args.images, args.repeats)
    print(f'  per-(image, class) loop   : {r_loop:8.2f} img/s')
    print(f'  batched                   : {r_batch:8.2f} img/s')
    print(f'  ratio batched / loop      : {r_batch / r_loop:8.2f}x')
    print(f'  batched, class_ids 2/img  : {r_two:8.2f} img/s')
    print(f'  max |difference|          : {(out_b - out_l).abs().max().item():.2e} '
          f'(max value {out_b.abs().max().item():.2e})')


if __name__ == '__main__':
    main()
