"""Benchmark: TestSegmentor's post-processing pass (dense CRF) with 1 worker vs a 2-worker pool.

The pass is what the stage runs: :class:`wsss_core.pipeline.segmentor_postprocess.PostprocessJob`
over the dataset indices through ``wsss_core.refiners.parallel.map_images`` (``workers=1``
runs inline in this process, ``workers=2`` a spawn pool), with the ``deeplab`` CRF preset
on the raw RGB image.  Inputs are VOC-sized: ``--images`` 500x375 images with 21 labels,
made from seeds by ``bench/crf_throughput.py``'s ``make_item`` and written beforehand (not
timed) as a VOC-layout data set (JPEG image, ground-truth PNG = argmax of the scores) plus
the stored scores pass 1 would leave (``logits/<id>.npz``, float16, at output stride 8,
47x63).  Each timed item therefore loads the image, mask and scores, upsamples, runs the
CRF, writes two PNGs and computes the confusion matrices.  Both runs are timed in the same
process, pool start-up included, into separate output folders; the returned confusion
matrices and the written label maps must be identical.  Threads: OMP and OpenCV at 1 here
(the pool's workers get 1 each), so the ratio compares one core with two.

    .venv/bin/python bench/deeplab_crf_workers.py [--images 16] [--workers 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

LABELS = 21


def write_inputs(root: Path, n: int) -> None:
    """A VOC-layout val split of ``n`` seeded images and their stored scores."""
    import cv2
    from crf_throughput import make_item  # bench/ is on sys.path when run as a script
    from wsss_core.io import save_label_png
    from wsss_core.pipeline.segmentor_postprocess import save_logits
    for d in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation', 'logits'):
        (root / d).mkdir(parents=True, exist_ok=True)
    ids = [f'img_{i:04d}' for i in range(n)]
    for i, img_id in enumerate(ids):
        img, probs = make_item(i, labels=LABELS)
        cv2.imwrite(str(root / 'JPEGImages' / f'{img_id}.jpg'), img[..., ::-1])
        save_label_png(root / 'SegmentationClass' / f'{img_id}.png',
                       probs.argmax(0).astype(np.uint8))
        save_logits(root / 'logits' / f'{img_id}.npz', np.log(probs[:, ::8, ::8]), img.shape[:2])
    (root / 'ImageSets/Segmentation/val.txt').write_text('\n'.join(ids) + '\n')


def label_maps(folder: Path) -> list:
    from wsss_core.io import read_label_png
    return [read_label_png(p) for p in sorted(folder.glob('*.png'))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=16)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--json', default=None, help='write the figures here')
    args = p.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    import cv2
    cv2.setNumThreads(1)
    from wsss_core.plugin_loader import load_plugins
    load_plugins(enabled=['deeplab'])
    from wsss_core.datasets import build_dataset
    from wsss_core.refiners.dense_crf import crf_params
    from wsss_core.refiners.parallel import map_images
    from wsss_core.pipeline.segmentor_postprocess import PostprocessJob

    params = crf_params('deeplab')
    tmp = Path(tempfile.mkdtemp(prefix='bench_deeplab_crf_'))
    try:
        write_inputs(tmp / 'data', args.images)
        dataset = build_dataset(dict(type='VOCLayoutDataset', data_root=str(tmp / 'data'),
                                     num_classes=LABELS - 1, img_suffix='.jpg'), split='val')
        load = os.getloadavg()[0]
        runs = {}
        for workers in (1, args.workers):
            out = tmp / f'workers_{workers}'
            job = PostprocessJob(dataset, tmp / 'data' / 'logits', out / 'predictions',
                                 out / 'predictions_raw', LABELS, params, 'raw_rgb')
            t0, c0 = time.perf_counter(), time.process_time()
            results = map_images(job, range(len(dataset)), workers=workers, progress=False)
            wall = time.perf_counter() - t0
            runs[workers] = dict(results=results, wall=wall,
                                 cpu=time.process_time() - c0,
                                 maps=label_maps(out / 'predictions')
                                 + label_maps(out / 'predictions_raw'))
        one, many = runs[1], runs[args.workers]
        same = (len(one['maps']) == len(many['maps']) == 2 * args.images
                and all(np.array_equal(a, b) for a, b in zip(one['maps'], many['maps']))
                and all(ra[0] == rb[0] and np.array_equal(ra[1], rb[1])
                        and np.array_equal(ra[2], rb[2])
                        for ra, rb in zip(one['results'], many['results'])))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate = {w: args.images / r['wall'] for w, r in runs.items()}
    res = dict(images=args.images, size='500x375', labels=LABELS, preset='deeplab',
               crf_params=params.kernels(), crf_image='raw_rgb', cpus=os.cpu_count(),
               workers=args.workers, images_per_s={str(w): v for w, v in rate.items()},
               s_per_image_1_worker_cpu=one['cpu'] / args.images,
               ratio=rate[args.workers] / rate[1], identical=bool(same),
               loadavg_before=load, loadavg_after=os.getloadavg()[0])
    print(f"TestSegmentor post-processing (PostprocessJob via map_images), CRF preset "
          f"'deeplab' {params.kernels()}, image raw_rgb")
    print(f'  {args.images} images 500x375, {LABELS} labels, scores 47x63; {os.cpu_count()} CPUs, '
          f'load average before {load:.2f}')
    print(f"  {'1 worker (inline)':<22}: {rate[1]:6.2f} img/s  ({1 / rate[1]:.2f} s/img wall, "
          f"{res['s_per_image_1_worker_cpu']:.2f} s/img CPU)")
    print(f"  {f'{args.workers} workers (pool)':<22}: {rate[args.workers]:6.2f} img/s  "
          f'(pool start-up included)')
    print(f"  {f'ratio {args.workers} / 1':<22}: {res['ratio']:6.2f}x  "
          f"(load average after {res['loadavg_after']:.2f})")
    print(f"  {'identical outputs':<22}: {same}")
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(res, fh, indent=2)


if __name__ == '__main__':
    main()
