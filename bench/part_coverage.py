"""Where do a run's attention maps sit on SyntheticShapes objects?  Part coverage per CAM stage.

SyntheticShapes draws every object with class-specific parts (``parts/<id>.png``: 1 the
dominant texture, 2 the colour spot, 3 the faint texture, 0 the plain body) on a body shared
by all classes.  A classifier's CAM peaks on the dominant part; a method that "mines the
integral object" (OAA's accumulation, its IAM, NSROM's OA-CAM) should raise the activation on
the other parts and on the plain body without raising it on the background.  For each CAM
stage of a finished work dir this prints, over the training images, the mean map value of the
image's ground-truth class on each part kind, on the plain body and on the background, the
fraction of object pixels above 0.25, and the mIoU at background threshold 0.25.

    .venv/bin/python bench/part_coverage.py work_dirs/oaa_synthetic cams oaa_cams oaa_accumulated \
        oaa_iam_cams [--max-images 500] [--json out.json]

Reads only what the stages wrote (``<stage>/cams/<id>.npz``) and the generated data set.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

PART_NAMES = ('dominant_part', 'colour_spot', 'faint_part')


def stage_coverage(cam_dir: Path, dataset, parts_dir: Path, max_images: int,
                   threshold: float = 0.25) -> dict:
    """Mean GT-class map per part kind / body / background, coverage and mIoU@threshold."""
    from wsss_core.io import load_cam, read_gray_png
    n_labels = dataset.num_classes + 1
    sums = {k: [0.0, 0] for k in PART_NAMES + ('plain_body', 'background')}
    covered = [0, 0]
    conf = np.zeros((n_labels, n_labels), np.int64)
    for index in range(min(len(dataset), max_images)):
        sample = dataset.load_sample(index)
        gt, img_id = sample['gt_seg'], sample['img_id']
        parts = read_gray_png(parts_dir / f'{img_id}.png')
        cams, ids = load_cam(cam_dir / f'{img_id}.npz')
        cams = cams.astype(np.float32)
        full = np.zeros((n_labels,) + gt.shape, np.float32)
        full[np.asarray(ids, dtype=np.int64) + 1] = cams
        gt_map = np.take_along_axis(full, np.minimum(gt, n_labels - 1)[None].astype(np.int64),
                                    0)[0]
        obj = (gt > 0) & (gt < n_labels)
        for k, name in enumerate(PART_NAMES, start=1):
            sel = obj & (parts == k)
            sums[name][0] += float(gt_map[sel].sum())
            sums[name][1] += int(sel.sum())
        body = obj & (parts == 0)
        sums['plain_body'][0] += float(gt_map[body].sum())
        sums['plain_body'][1] += int(body.sum())
        bg = gt == 0
        if len(ids):
            top = cams.max(0)
            sums['background'][0] += float(top[bg].sum())
            sums['background'][1] += int(bg.sum())
        covered[0] += int((gt_map[obj] > threshold).sum())
        covered[1] += int(obj.sum())
        pred = np.where(full[1:].max(0) > threshold, full[1:].argmax(0) + 1, 0)
        valid = gt < n_labels
        conf += np.bincount(n_labels * gt[valid].astype(np.int64) + pred[valid],
                            minlength=n_labels ** 2).reshape(n_labels, n_labels)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    present = conf.sum(1) > 0
    out = {k: (s / n if n else float('nan')) for k, (s, n) in sums.items()}
    out['object_coverage'] = covered[0] / max(1, covered[1])
    out['miou'] = float(np.mean(inter[present] / np.maximum(union[present], 1)))
    return out


def work_dir_dataset(work_dir: Path, split: str):
    """The ``split`` of the data set a finished work dir ran on (its ``config.py``)."""
    from mmengine.config import Config
    from wsss_core.components import register_core_components
    from wsss_core.datasets import build_dataset
    register_core_components()
    cfg = Config.fromfile(str(work_dir / 'config.py'))
    return build_dataset(cfg.data.to_dict(), split=split)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('work_dir', type=Path)
    p.add_argument('stages', nargs='+')
    p.add_argument('--max-images', type=int, default=500)
    p.add_argument('--json', type=Path)
    args = p.parse_args()
    dataset = work_dir_dataset(args.work_dir, 'train')
    parts_dir = Path(dataset.data_root) / 'parts'
    rows = {s: stage_coverage(args.work_dir / s / 'cams', dataset, parts_dir, args.max_images)
            for s in args.stages}
    cols = list(next(iter(rows.values())))
    print('stage'.ljust(22) + ''.join(c[:14].rjust(15) for c in cols))
    for stage, row in rows.items():
        print(stage.ljust(22) + ''.join(f'{row[c]:15.3f}' for c in cols))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()
