"""Benchmark: dense-CRF throughput (images/s) inline (1 worker) vs a 2-worker process pool.

Each item is one 500x375 image with a 21-label unary (VOC-sized), made from a seed inside
the worker (a smooth random image and a softmax of smooth random scores), then refined with
a CRF preset; the label map comes back.  Both runs are timed in the same process, pool
start-up included, and must return identical labels.

    .venv/bin/python bench/crf_throughput.py [--images 16] [--preset psa] [--workers 2]
"""
from __future__ import annotations

import argparse
import functools
import os
import time

import numpy as np


def make_item(seed: int, h: int = 375, w: int = 500, labels: int = 21):
    """A smooth RGB uint8 image and (L, H, W) softmax probabilities, from ``seed``."""
    import cv2
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (h // 25, w // 25, 3), dtype=np.uint8), (w, h),
                     interpolation=cv2.INTER_LINEAR)
    scores = rng.normal(0, 3, (labels, h // 16, w // 16)).astype(np.float32)
    scores = np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR) for s in scores])
    probs = np.exp(scores - scores.max(0))
    return img, probs / probs.sum(0)


def crf_label(seed: int, preset: str = 'psa') -> np.ndarray:
    from wsss_core.refiners.dense_crf import crf_params, dense_crf
    img, probs = make_item(seed)
    return dense_crf(img, probs, **crf_params(preset).kernels()).argmax(0).astype(np.uint8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=16)
    p.add_argument('--preset', default='psa')
    p.add_argument('--workers', type=int, default=2)
    args = p.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    from wsss_core.refiners.dense_crf import crf_params
    from wsss_core.refiners.parallel import map_images

    load = os.getloadavg()[0]
    fn = functools.partial(crf_label, preset=args.preset)
    seeds = list(range(args.images))
    t0 = time.perf_counter()
    for s in seeds[:4]:
        make_item(s)
    gen = (time.perf_counter() - t0) / 4
    rates, outs = {}, {}
    cpu = {}
    for workers in (1, args.workers):
        t0, c0 = time.perf_counter(), time.process_time()
        outs[workers] = map_images(fn, seeds, workers=workers, progress=False)
        rates[workers] = args.images / (time.perf_counter() - t0)
        cpu[workers] = (time.process_time() - c0) / args.images
    same = all(np.array_equal(a, b) for a, b in zip(outs[1], outs[args.workers]))
    print(f'dense CRF, preset {args.preset} {crf_params(args.preset)}, '
          f'load average before {load:.2f}')
    print(f'  {args.images} images 500x375, 21 labels, {os.cpu_count()} CPUs; '
          f'input generation {gen * 1e3:.0f} ms/img (included in both)')
    print(f'  1 worker (inline)    : {rates[1]:6.2f} img/s  ({1 / rates[1]:.2f} s/img wall, '
          f'{cpu[1]:.2f} s/img CPU)')
    print(f'  {args.workers} workers (pool)    : {rates[args.workers]:6.2f} img/s  '
          f'(pool start-up included)')
    print(f'  ratio {args.workers} / 1           : {rates[args.workers] / rates[1]:6.2f}x  '
          f'(load average after {os.getloadavg()[0]:.2f}; other processes share the CPUs)')
    print(f'  identical labels     : {same}')


if __name__ == '__main__':
    main()
