"""Benchmark: batched multi-scale + flip CAM inference vs a plain per-scale, per-flip loop.

Same model, same images, same scales (1.0, 0.5, 1.5, 2.0) + flip; prints images/s of both,
their ratio, and the largest difference between the two outputs (they must agree).

    .venv/bin/python bench/cam_throughput.py [--images 64] [--size 96] [--batch 16] [--threads 2] \
        [--device cpu]
"""
from __future__ import annotations

import argparse
import time

import torch


def measure(images: int = 64, size: int = 96, batch: int = 16, threads: int = 2,
            repeats: int = 3, device: str = 'cpu') -> dict:
    """images/s of the per-scale/per-flip loop and of the batched path (best of ``repeats``
    after a warm-up), their ratio and the largest difference of the two outputs."""
    torch.set_num_threads(threads)
    from wsss_core.cams import CAM, DEFAULT_SCALES, multiscale_cams, multiscale_cams_loop
    from wsss_core.components import register_core_components
    from wsss_core.models.cam_classifier import CAMClassifier
    register_core_components()
    torch.manual_seed(0)
    model = CAMClassifier(backbone=dict(type='SmallResNet'), num_classes=6).eval().to(device)
    data = torch.randn(images, 3, size, size).to(device)
    gen = CAM()
    sync = torch.cuda.synchronize if str(device).startswith('cuda') else (lambda: None)

    def batched():
        return torch.cat([multiscale_cams(gen, model, data[i:i + batch], DEFAULT_SCALES)
                          for i in range(0, images, batch)])

    def loop():
        return multiscale_cams_loop(gen, model, data, DEFAULT_SCALES)

    results = {}
    with torch.inference_mode():
        for name, fn in (('loop', loop), ('batched', batched)):
            fn()  # warm-up
            best = float('inf')
            for _ in range(repeats):
                sync()
                t0 = time.perf_counter()
                out = fn()
                sync()
                best = min(best, time.perf_counter() - t0)
            results[name] = (images / best, out)
    loop_out, batched_out = results['loop'][1], results['batched'][1]
    return dict(images=images, size=size, batch=batch, threads=threads, repeats=repeats,
                device=str(device), scales=list(DEFAULT_SCALES), flip=True,
                images_per_s=dict(loop=results['loop'][0], batched=results['batched'][0]),
                ratio=results['batched'][0] / results['loop'][0],
                max_abs_diff=(batched_out - loop_out).abs().max().item(),
                max_value=loop_out.abs().max().item())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=64)
    p.add_argument('--size', type=int, default=96)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--device', default='cpu')
    args = p.parse_args()
    res = measure(args.images, args.size, args.batch, args.threads, args.repeats, args.device)
    ips = res['images_per_s']
    print(f'CAM inference, SmallResNet, {args.images} images {args.size}px, scales '
          f"{tuple(res['scales'])} + flip, {args.threads} threads, best of {args.repeats}"
          + ('' if args.device == 'cpu' else f', device {args.device}'))
    print(f"  per-scale/per-flip loop : {ips['loop']:8.1f} img/s")
    print(f"  batched (batch {args.batch:3d})    : {ips['batched']:8.1f} img/s")
    print(f"  ratio batched / loop    : {res['ratio']:8.2f}x")
    print(f"  max |difference|        : {res['max_abs_diff']:.2e} (max value {res['max_value']:.2f})")


if __name__ == '__main__':
    main()
