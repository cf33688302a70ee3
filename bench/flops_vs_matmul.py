"""Benchmark: a backbone forward's achieved FLOP/s against a large matmul's on the same device.

The backbone's FLOPs are counted once with ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and matrix products, 2 FLOPs per multiply-add; element-wise work is not
counted), then its forward (eval mode, inference mode, float32) is timed, best of
``--repeats`` after a warm-up:

    achieved FLOP/s = counted FLOPs / best forward time
    matmul FLOP/s   = 2 n^3 / best time of an (n x n) @ (n x n) float32 product
    ratio           = achieved / matmul      (how close the backbone gets to the limit)

Backbones: ``small_resnet`` (the quickstart's SmallResNet, 96 px, batch 64) and
``resnet50`` (torchvision ResNet-50 layout, output stride 32, random weights, 224 px,
batch 8).

    .venv/bin/python bench/flops_vs_matmul.py [--models small_resnet resnet50] \
        [--threads 2] [--repeats 3] [--matmul-n 2048] [--device cpu] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Dict, Optional, Sequence

import torch

#: backbone name -> (model config, default batch, default image size)
BACKBONES: Dict[str, tuple] = {
    'small_resnet': (dict(type='SmallResNet'), 64, 96),
    'resnet50': (dict(type='TorchvisionResNet', depth=50, output_stride=32), 8, 224),
}


def _sync(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def best_time(fn, repeats: int, device: str) -> float:
    """Best wall time of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    best = float('inf')
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_flops_per_s(n: int, repeats: int, device: str) -> float:
    """FLOP/s of an (n x n) @ (n x n) float32 product: 2 n^3 / best time."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    return 2 * n ** 3 / best_time(lambda: a @ b, repeats, device)


def counted_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of ``model(x)`` as FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    return int(counter.get_total_flops())


def backbone_figures(name: str, batch: int, size: int, repeats: int, device: str) -> dict:
    """Counted FLOPs, best forward time and achieved FLOP/s of one backbone."""
    from wsss_core.components import register_core_components
    from wsss_core.registry import MODELS, build
    register_core_components()
    torch.manual_seed(0)
    model = build(dict(BACKBONES[name][0]), MODELS).eval().to(device)
    x = torch.randn(batch, 3, size, size).to(device)
    with torch.inference_mode():
        flops = counted_flops(model, x)
        seconds = best_time(lambda: model(x), repeats, device)
    return dict(batch=batch, size=size, flops=flops, forward_s=seconds,
                flops_per_s=flops / seconds, images_per_s=batch / seconds)


def measure(models: Sequence[str] = ('small_resnet', 'resnet50'), threads: int = 2,
            repeats: int = 3, matmul_n: int = 2048, device: str = 'cpu',
            batch: Optional[int] = None, size: Optional[int] = None) -> dict:
    """The matmul's FLOP/s and, per backbone, its achieved FLOP/s and the ratio of the two.

    ``batch`` / ``size`` override every backbone's defaults (for quick runs).
    """
    unknown = [m for m in models if m not in BACKBONES]
    if unknown:
        raise ValueError(f'unknown backbones {unknown}; choose from {sorted(BACKBONES)}')
    torch.set_num_threads(threads)
    with torch.inference_mode():
        peak = matmul_flops_per_s(matmul_n, repeats, device)
    res = dict(device=str(device), threads=threads, repeats=repeats, matmul_n=matmul_n,
               matmul_flops_per_s=peak, backbones={})
    for name in models:
        fig = backbone_figures(name, batch or BACKBONES[name][1], size or BACKBONES[name][2],
                               repeats, device)
        fig['ratio'] = fig['flops_per_s'] / peak
        res['backbones'][name] = fig
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=list(BACKBONES), choices=sorted(BACKBONES))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--matmul-n', type=int, default=2048)
    p.add_argument('--batch', type=int, default=None, help="override the backbones' batch")
    p.add_argument('--size', type=int, default=None, help="override the backbones' image size")
    p.add_argument('--device', default='cpu')
    p.add_argument('--json', default=None, help='write the figures here')
    args = p.parse_args()
    res = measure(args.models, args.threads, args.repeats, args.matmul_n, args.device,
                  args.batch, args.size)
    print(f"device {args.device}, {args.threads} threads, best of {args.repeats}; "
          f"matmul {args.matmul_n}^2 float32: {res['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s")
    for name, f in res['backbones'].items():
        print(f"  {name:<13} batch {f['batch']:3d} x {f['size']} px: {f['flops'] / 1e9:8.2f} GFLOP"
              f" in {f['forward_s'] * 1e3:8.1f} ms = {f['flops_per_s'] / 1e9:7.1f} GFLOP/s "
              f"({f['ratio']:.1%} of the matmul)")
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(res, fh, indent=2)


if __name__ == '__main__':
    main()
