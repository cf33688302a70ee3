"""Benchmark: images/s of the OpenCV saliency estimators on 500x375 images (one process).

Images are smooth random backgrounds with a few bright rectangles (seeded); each estimator
runs over all of them after one warm-up call; the best of ``--repeats`` passes is reported.

    .venv/bin/python bench/saliency_throughput.py [--images 32] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def make_images(n: int, h: int = 375, w: int = 500, seed: int = 0) -> list:
    import cv2
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = cv2.resize(rng.integers(0, 256, (h // 25, w // 25, 3), dtype=np.uint8), (w, h),
                         interpolation=cv2.INTER_LINEAR)
        for _ in range(3):
            y, x = rng.integers(0, h - 60), rng.integers(0, w - 80)
            img[y:y + rng.integers(30, 60), x:x + rng.integers(40, 80)] = rng.integers(0, 256, 3)
        out.append(img)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=32)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=1, help='cv2.setNumThreads')
    args = p.parse_args()
    import cv2
    cv2.setNumThreads(args.threads)
    from wsss_core.saliency import FineGrainedSaliency, SpectralResidualSaliency

    images = make_images(args.images)
    print(f'OpenCV saliency, {args.images} images 500x375 RGB, cv2 threads {args.threads}, '
          f'best of {args.repeats}, load average {os.getloadavg()[0]:.2f}')
    for cls in (SpectralResidualSaliency, FineGrainedSaliency):
        src = cls()
        src('warm-up', images[0])
        best = float('inf')
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for i, img in enumerate(images):
                sal = src(str(i), img)
            best = min(best, time.perf_counter() - t0)
        assert sal.dtype == np.uint8 and sal.shape == img.shape[:2]
        print(f'  {cls.__name__:26s}: {args.images / best:8.1f} img/s '
              f'({best / args.images * 1e3:6.2f} ms/img)')


if __name__ == '__main__':
    main()
