"""Where do a run's pseudo labels and segmentations go wrong?  The error split per stage.

mIoU and pixel precision do not say whether labels miss object parts, spill onto the
background or name the wrong class, and a segmenter trained on them answers each kind
differently.  For each named stage of a finished work dir this prints
:meth:`wsss_core.evaluation.LabelQuality.error_split` against the ground truth: the
fractions of object pixels labelled background, left unlabelled or given another class, of
background pixels labelled as an object, and the labelled object area over the true one;
plus the mean and the share below 0.3 of the per-image object coverage (object pixels
labelled with their own class) and, where the data set draws parts (SyntheticShapes'
``parts/<id>.png``, as in ``bench/part_coverage.py``), that coverage on each part kind: the
dominant texture, the colour spot, the faint texture and the plain body.  A segmenter can
recover object parts its labels miss at random, not those they call background every time.

* a label stage (``<stage>/labels/<id>.png``, 255 = unlabelled) is scored on the training
  images;
* a TestSegmentor stage is scored on the split it predicted, twice: ``<stage>``
  (``predictions/``, after its CRF when it has one) and ``<stage>:raw``
  (``predictions_raw/``).

    .venv/bin/python bench/label_errors.py work_dirs/zoo labels_saliency moana_rw_labels \
        test moana_test [--max-images 1000] [--json out.json]

Reads only what the stages wrote and the generated data set.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from part_coverage import PART_NAMES, work_dir_dataset


def stage_sources(stage_dir: Path):
    """``[(row name, folder of PNGs, split)]`` for one stage dir (see module docstring)."""
    if not (stage_dir / 'manifest.json').is_file():
        raise SystemExit(f'{stage_dir}: no manifest.json (the stage has not finished there)')
    manifest = json.loads((stage_dir / 'manifest.json').read_text())
    art = manifest.get('artifacts', {})
    if (stage_dir / 'labels').is_dir():
        return [(stage_dir.name, stage_dir / 'labels', 'train')]
    if 'predictions' in art:
        split = art.get('split', 'val')
        rows = [(stage_dir.name, stage_dir / art['predictions'], split)]
        if art.get('predictions_raw'):
            rows.append((f'{stage_dir.name}:raw', stage_dir / art['predictions_raw'], split))
        return rows
    raise SystemExit(f'{stage_dir}: neither labels/ nor predictions in its manifest')


#: the part ids of ``parts/<id>.png``: 1-3 the named parts, 0 the plain body
PART_IDS = {**{name: k for k, name in enumerate(PART_NAMES, start=1)}, 'plain_body': 0}


def error_split_of(folder: Path, dataset, max_images: int) -> dict:
    """The error split, per-image object coverage and per-part coverage of the PNGs in
    ``folder``."""
    from wsss_core.evaluation import LabelQuality
    from wsss_core.io import read_gray_png, read_label_png
    quality = LabelQuality(dataset.num_classes + 1)
    coverage, parts_dir = [], Path(dataset.data_root) / 'parts'
    part_hits = np.zeros((len(PART_IDS), 2), np.int64)   # (covered, pixels) per kind
    for rec in dataset.records[:max_images]:
        path = folder / f'{rec.img_id}.png'
        if not path.is_file():
            continue
        pred = read_label_png(path)
        gt = read_label_png(rec.seg_path, dataset.num_classes)
        quality.update(pred, gt)
        obj = (gt > 0) & (gt <= dataset.num_classes)
        if obj.any():
            coverage.append(float((pred[obj] == gt[obj]).mean()))
        part_file = parts_dir / f'{rec.img_id}.png'
        if part_file.is_file():
            parts, right = read_gray_png(part_file), obj & (pred == gt)
            for k, part_id in enumerate(PART_IDS.values()):
                sel = obj & (parts == part_id)
                part_hits[k] += (int(right[sel].sum()), int(sel.sum()))
    cov = np.asarray(coverage)
    with np.errstate(invalid='ignore', divide='ignore'):
        per_part = part_hits[:, 0] / part_hits[:, 1]
    return dict(quality.error_split(), images=quality.num_images,
                coverage_mean=float(cov.mean()) if cov.size else float('nan'),
                coverage_below_0_3=float((cov < 0.3).mean()) if cov.size else float('nan'),
                **{k: float(v) for k, v in zip(PART_IDS, per_part)})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('work_dir', type=Path)
    p.add_argument('stages', nargs='+')
    p.add_argument('--max-images', type=int, default=1000)
    p.add_argument('--json', type=Path)
    args = p.parse_args(argv)
    # every stage is checked before the first is scored (scoring takes minutes per stage)
    sources = [src for stage in args.stages for src in stage_sources(args.work_dir / stage)]
    cols = ['object_to_background', 'object_unlabelled', 'object_wrong_class',
            'background_to_object', 'object_area_ratio', 'coverage_mean', 'coverage_below_0_3',
            *PART_IDS]
    print('stage'.ljust(22) + ''.join(c[:15].rjust(16) for c in cols) + 'images'.rjust(8))
    datasets, rows = {}, {}
    for name, folder, split in sources:
        if split not in datasets:
            datasets[split] = work_dir_dataset(args.work_dir, split)
        row = rows[name] = error_split_of(folder, datasets[split], args.max_images)
        print(name.ljust(22) + ''.join(f'{row[c]:16.3f}' for c in cols)
              + f"{row['images']:8d}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()
