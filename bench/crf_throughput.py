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


def crf_label(seed: int, preset: str = 'psa', h: int = 375, w: int = 500) -> np.ndarray:
    from wsss_core.refiners.dense_crf import crf_params, dense_crf
    img, probs = make_item(seed, h, w)
    return dense_crf(img, probs, **crf_params(preset).kernels()).argmax(0).astype(np.uint8)


def measure(images: int = 16, preset: str = 'psa', workers: int = 2, h: int = 375,
            w: int = 500) -> dict:
    """images/s of the CRF inline (1 worker) and over ``workers`` processes (pool start-up
    included), their ratio, whether the labels are identical, and the per-image costs."""
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    from wsss_core.refiners.dense_crf import crf_params
    from wsss_core.refiners.parallel import map_images

    load = os.getloadavg()[0]
    fn = functools.partial(crf_label, preset=preset, h=h, w=w)
    seeds = list(range(images))
    t0 = time.perf_counter()
    for s in seeds[:4]:
        make_item(s, h, w)
    gen = (time.perf_counter() - t0) / min(4, images)
    rates, outs, cpu = {}, {}, {}
    for n in (1, workers):
        t0, c0 = time.perf_counter(), time.process_time()
        outs[n] = map_images(fn, seeds, workers=n, progress=False)
        rates[n] = images / (time.perf_counter() - t0)
        cpu[n] = (time.process_time() - c0) / images
    same = all(np.array_equal(a, b) for a, b in zip(outs[1], outs[workers]))
    return dict(images=images, size=f'{w}x{h}', labels=21, preset=preset,
                crf_params=str(crf_params(preset)), cpus=os.cpu_count(), workers=workers,
                images_per_s={'1': rates[1], str(workers): rates[workers]},
                s_per_image_1_worker_cpu=cpu[1], input_generation_s=gen,
                ratio=rates[workers] / rates[1], identical=bool(same),
                loadavg_before=load, loadavg_after=os.getloadavg()[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=16)
    p.add_argument('--preset', default='psa')
    p.add_argument('--workers', type=int, default=2)
    args = p.parse_args()
    res = measure(args.images, args.preset, args.workers)
    rate, n = res['images_per_s'], args.workers
    print(f"dense CRF, preset {args.preset} {res['crf_params']}, "
          f"load average before {res['loadavg_before']:.2f}")
    print(f"  {args.images} images 500x375, 21 labels, {res['cpus']} CPUs; "
          f"input generation {res['input_generation_s'] * 1e3:.0f} ms/img (included in both)")
    print(f"  1 worker (inline)    : {rate['1']:6.2f} img/s  ({1 / rate['1']:.2f} s/img wall, "
          f"{res['s_per_image_1_worker_cpu']:.2f} s/img CPU)")
    print(f"  {n} workers (pool)    : {rate[str(n)]:6.2f} img/s  (pool start-up included)")
    print(f"  ratio {n} / 1           : {res['ratio']:6.2f}x  "
          f"(load average after {res['loadavg_after']:.2f}; other processes share the CPUs)")
    print(f"  identical labels     : {res['identical']}")


if __name__ == '__main__':
    main()
