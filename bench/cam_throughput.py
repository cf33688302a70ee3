"""Benchmark: batched multi-scale + flip CAM inference vs a plain per-scale, per-flip loop.

Same model, same images, same scales (1.0, 0.5, 1.5, 2.0) + flip; prints images/s of both,
their ratio, and the largest difference between the two outputs (they must agree).

    .venv/bin/python bench/cam_throughput.py [--images 64] [--size 96] [--batch 16] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=64)
    p.add_argument('--size', type=int, default=96)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from wsss_core.cams import CAM, DEFAULT_SCALES, multiscale_cams, multiscale_cams_loop
    from wsss_core.components import register_core_components
    from wsss_core.models.cam_classifier import CAMClassifier
    register_core_components()
    torch.manual_seed(0)
    model = CAMClassifier(backbone=dict(type='SmallResNet'), num_classes=6).eval()
    images = torch.randn(args.images, 3, args.size, args.size)
    gen = CAM()

    def batched():
        return torch.cat([multiscale_cams(gen, model, images[i:i + args.batch], DEFAULT_SCALES)
                          for i in range(0, args.images, args.batch)])

    def loop():
        return multiscale_cams_loop(gen, model, images, DEFAULT_SCALES)

    results = {}
    with torch.inference_mode():
        for name, fn in (('loop', loop), ('batched', batched)):
            fn()  # warm-up
            best = float('inf')
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = fn()
                best = min(best, time.perf_counter() - t0)
            results[name] = (args.images / best, out)
    diff = (results['batched'][1] - results['loop'][1]).abs().max().item()
    scale = results['loop'][1].abs().max().item()
    print(f'CAM inference, SmallResNet, {args.images} images {args.size}px, scales '
          f'{DEFAULT_SCALES} + flip, {args.threads} threads, best of {args.repeats}')
    print(f"  per-scale/per-flip loop : {results['loop'][0]:8.1f} img/s")
    print(f"  batched (batch {args.batch:3d})    : {results['batched'][0]:8.1f} img/s")
    print(f"  ratio batched / loop    : {results['batched'][0] / results['loop'][0]:8.2f}x")
    print(f'  max |difference|        : {diff:.2e} (max value {scale:.2f})')


if __name__ == '__main__':
    main()
