"""``wsss-eval PRED_DIR GT_DIR --num-classes 21``: segmentation metrics of two label folders.

    wsss-eval work_dirs/run/labels/labels VOC2012/SegmentationClass --num-classes 21 \\
        --ids VOC2012/ImageSets/Segmentation/train.txt --json labels_train.json

Both folders hold index PNGs named ``<id>.png`` (0 = background, 1..C, 255 = ignore). The
protocol is the reference one (``docs/methods/baseline.md#14-miou-and-its-conventions``,
``docs/miou_conventions.md``) and the code is
:class:`~wsss_core.evaluation.confusion.ConfusionMatrix`:

* one ``n x n`` confusion matrix ``C[gt, pred]`` (``n`` = ``--num-classes``, background
  included) over all pixels of all images whose ground truth is not 255;
* a predicted 255 (an unlabelled pseudo-label pixel) counts as background
  (``--pred-ignore background``, irn's convention) or the pixel is left out (``skip``);
* ``IoU_k = C_kk / (row_k + col_k - C_kk)``; ``mIoU`` under ``--convention``
  (:mod:`~wsss_core.evaluation.miou_conventions`): ``union`` (default) = NaN-mean over the
  classes present in ground truth or prediction (GETAM, irn / chainercv), ``gt_present`` =
  NaN-mean over the classes present in the ground truth (deeplab-pytorch), ``all_classes`` =
  plain mean over all classes of ``TP / (T + P - TP + 1e-10)`` (psa-style ``eval.py``).
  The report names the convention and lists all three, with frequency-weighted IoU;
  pixel accuracy = ``trace / sum``.

Pseudo-label precision / recall (:class:`~wsss_core.evaluation.label_quality.LabelQuality`):
precision = correct / labelled pixels, recall = correct / valid pixels, per class too.

Images: the ids of ``--ids`` (first token of each line; ``/JPEGImages/<id>.jpg ...`` lines
give ``<id>``), else every ``*.png`` of PRED_DIR. A missing prediction or ground-truth file,
a size mismatch, a prediction outside ``0..n-1`` and 255, or a ground-truth value outside
``0..n-1`` and 255 (usually a wrong ``--num-classes``) is an error naming the file. Exit
status: 0 done, 1 bad input, 2 usage error.
"""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..io import DataFileError, read_label_png, write_json
from ..datasets.class_names import COCO_CLASSES, VOC_CLASSES
from .confusion import PRED_IGNORE_MODES, ConfusionMatrix
from .label_quality import LabelQuality
from .miou_conventions import CONVENTION_RULES, DEFAULT_MIOU_CONVENTION, MIOU_CONVENTIONS, \
    check_convention

__all__ = ['VOC_CLASSES', 'COCO_CLASSES', 'resolve_class_names', 'read_ids', 'pair_files',
           'evaluate_pairs', 'evaluate_dirs', 'format_report', 'main']

IGNORE_INDEX = 255
_NAMED = {'voc': VOC_CLASSES, 'coco': COCO_CLASSES}
PROTOCOL = ('C[gt, pred] over pixels with 0 <= gt < n (gt 255 ignored); predicted 255 -> {mode}; '
            'IoU_k = C_kk / (row_k + col_k - C_kk); mIoU [{convention}] = {rule}')


# ============================================================================ inputs
def resolve_class_names(spec: Optional[str], num_classes: int) -> List[str]:
    """``n`` names, background first, from ``VOC``, ``COCO``, a comma list, or ``None``.

    A comma list may leave out the background. ``None`` gives the VOC names for 21 classes,
    the COCO names for 81 and ``class_1 ...`` otherwise.
    """
    n = int(num_classes)
    if spec is None:
        fg = next((v for v in _NAMED.values() if len(v) + 1 == n),
                  tuple(f'class_{i}' for i in range(1, n)))
        return ['background', *fg]
    if spec.strip().lower() in _NAMED:
        fg = _NAMED[spec.strip().lower()]
        if len(fg) + 1 != n:
            raise ValueError(f'--class-names {spec} has {len(fg) + 1} classes (with background), '
                             f'but --num-classes is {n}')
        return ['background', *fg]
    names = [s.strip() for s in spec.split(',')]
    if len(names) == n - 1:
        names = ['background', *names]
    if len(names) != n or not all(names):
        raise ValueError(f'--class-names lists {len(names)} non-empty names; need {n} (or '
                         f'{n - 1} without background) for --num-classes {n}')
    return names


def read_ids(list_file) -> List[str]:
    """Image ids of a list file in any form :func:`~wsss_core.datasets.label_formats.read_list`
    accepts (plain ids, two-column deeplab/psa paths, OAA class lines)."""
    from ..datasets.label_formats import read_list
    ids = read_list(list_file)
    if not ids:
        raise DataFileError(f'id list {list_file} holds no ids')
    return ids


def _missing_error(what: str, folder: Path, missing: List[str], total: int) -> DataFileError:
    shown = ', '.join(str(folder / f'{i}.png') for i in missing[:5])
    more = f' (and {len(missing) - 5} more)' if len(missing) > 5 else ''
    return DataFileError(f'{what} missing for {len(missing)} of {total} image(s): {shown}{more}')


def pair_files(pred_dir, gt_dir, ids: Optional[Sequence[str]] = None
               ) -> List[Tuple[Path, Path]]:
    """``(prediction, ground truth)`` paths per id; raises naming any file that is missing."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for label, folder in (('prediction', pred_dir), ('ground-truth', gt_dir)):
        if not folder.is_dir():
            raise DataFileError(f'{label} folder not found: {folder}')
    if ids is None:
        ids = sorted(p.stem for p in pred_dir.glob('*.png'))
        if not ids:
            raise DataFileError(f'no .png files in the prediction folder {pred_dir}')
    else:
        missing = [i for i in ids if not (pred_dir / f'{i}.png').is_file()]
        if missing:
            raise _missing_error('prediction', pred_dir, missing, len(ids))
    missing = [i for i in ids if not (gt_dir / f'{i}.png').is_file()]
    if missing:
        raise _missing_error('ground truth', gt_dir, missing, len(ids))
    return [(pred_dir / f'{i}.png', gt_dir / f'{i}.png') for i in ids]


# ============================================================================ evaluation
def _evaluate_chunk(args) -> Tuple[ConfusionMatrix, LabelQuality]:
    pairs, num_classes, pred_ignore = args
    conf = ConfusionMatrix(num_classes, IGNORE_INDEX, pred_ignore)
    quality = LabelQuality(num_classes, IGNORE_INDEX)
    for pred_path, gt_path in pairs:
        pred = read_label_png(pred_path)
        gt = read_label_png(gt_path, num_classes - 1)   # values 0..n-1 and 255 only
        if pred.shape != gt.shape:
            raise DataFileError(f'{pred_path}: size {pred.shape} differs from the ground truth '
                                f'{gt_path} {gt.shape}')
        try:
            conf.update(pred, gt)
            quality.update(pred, gt)
        except ValueError as exc:
            raise DataFileError(f'{pred_path}: {exc}') from None
    return conf, quality


def evaluate_pairs(pairs: Sequence[Tuple[Path, Path]], num_classes: int,
                   pred_ignore: str = 'background', workers: int = 0
                   ) -> Tuple[ConfusionMatrix, LabelQuality]:
    """Accumulate the confusion matrix and label quality over ``(pred, gt)`` PNG pairs.

    ``workers > 1`` splits the pairs over that many processes; the counts are summed, so the
    result does not depend on it.
    """
    if int(num_classes) < 2:
        raise ValueError(f'--num-classes must be at least 2 (background + 1), got {num_classes}')
    if pred_ignore not in PRED_IGNORE_MODES:
        raise ValueError(f'pred_ignore must be one of {PRED_IGNORE_MODES}, got {pred_ignore!r}')
    n, pairs = int(num_classes), list(pairs)
    if workers <= 1 or len(pairs) < 2:
        return _evaluate_chunk((pairs, n, pred_ignore))
    k = min(int(workers), len(pairs))
    chunks = [(pairs[i::k], n, pred_ignore) for i in range(k)]
    conf = ConfusionMatrix(n, IGNORE_INDEX, pred_ignore)
    quality = LabelQuality(n, IGNORE_INDEX)
    with ProcessPoolExecutor(max_workers=k) as pool:
        for part_conf, part_quality in pool.map(_evaluate_chunk, chunks):
            conf.merge(part_conf)
            quality.merge(part_quality)
    return conf, quality


def evaluate_dirs(pred_dir, gt_dir, num_classes: int, ids: Optional[Sequence[str]] = None,
                  class_names: Optional[Sequence[str]] = None, pred_ignore: str = 'background',
                  workers: int = 0, convention: str = DEFAULT_MIOU_CONVENTION) -> Dict:
    """The JSON-ready result of comparing two label folders (see the module docstring);
    ``miou`` under ``convention``, every convention's in ``miou_by_convention``."""
    convention = check_convention(convention)
    names = list(class_names) if class_names is not None else resolve_class_names(
        None, num_classes)
    pairs = pair_files(pred_dir, gt_dir, ids)
    conf, quality = evaluate_pairs(pairs, num_classes, pred_ignore, workers)
    c, q = conf.summary(names, convention), quality.summary(names, convention)
    return {
        'pred_dir': str(pred_dir), 'gt_dir': str(gt_dir), 'num_classes': int(num_classes),
        'num_images': len(pairs), 'ignore_index': IGNORE_INDEX, 'pred_ignore': pred_ignore,
        'miou_convention': convention,
        'protocol': PROTOCOL.format(mode='background' if pred_ignore == 'background'
                                    else 'pixel skipped', convention=convention,
                                    rule=CONVENTION_RULES[convention]),
        'class_names': names,
        'metrics': {'miou': c['miou'], 'miou_convention': convention,
                    'miou_by_convention': c['miou_by_convention'], 'fw_iou': c['fw_iou'],
                    'pixel_accuracy': c['pixel_accuracy'],
                    'mean_class_accuracy': c['mean_class_accuracy'],
                    'precision': q['precision'], 'recall': q['recall'],
                    'labelled_fraction': q['labelled_fraction']},
        'confusion': c,
        'quality': q,
        'confusion_matrix': conf.matrix.tolist(),
    }


# ============================================================================ output
def _f(value) -> str:
    return 'n/a' if value is None else f'{value:.4f}'


def format_report(result: Dict) -> str:
    """Per-class table (IoU, precision, recall, pixel counts) and the overall figures."""
    names, c, q, m = (result['class_names'], result['confusion'], result['quality'],
                      result['metrics'])
    width = max(len('class'), *(len(n) for n in names))
    lines = [f"{'class':<{width}}  {'IoU':>7}  {'prec':>7}  {'recall':>7}  {'gt px':>12}  "
             f"{'pred px':>12}"]
    lines.append('-' * len(lines[0]))
    for name in names:
        pr = q['per_class'][name]
        lines.append(f"{name:<{width}}  {_f(c['iou'][name]):>7}  {_f(pr['precision']):>7}  "
                     f"{_f(pr['recall']):>7}  {c['gt_pixels'][name]:>12}  "
                     f"{c['pred_pixels'][name]:>12}")
    lines += [
        '',
        f"images: {result['num_images']}   pixels counted: {c['num_pixels']}   "
        f"predicted 255: {result['pred_ignore']}",
        f"mIoU [{m['miou_convention']}]: {_f(m['miou'])}   "
        f"({CONVENTION_RULES[m['miou_convention']]}; {c['num_classes_present']} of "
        f"{result['num_classes']} classes in ground truth or prediction, "
        f"{c['num_classes_in_gt']} in the ground truth)",
        'mIoU by convention: ' + '   '.join(f'{k} {_f(v)}' for k, v in
                                             m['miou_by_convention'].items())
        + f"   frequency-weighted IoU: {_f(m['fw_iou'])}",
        f"pixel accuracy: {_f(m['pixel_accuracy'])}   mean class accuracy: "
        f"{_f(m['mean_class_accuracy'])}",
        f"pseudo labels: labelled fraction {_f(m['labelled_fraction'])}   precision "
        f"{_f(m['precision'])}   recall {_f(m['recall'])}",
    ]
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='wsss-eval', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('pred_dir', help='folder of predicted / pseudo-label PNGs (<id>.png)')
    p.add_argument('gt_dir', help='folder of ground-truth PNGs (<id>.png)')
    p.add_argument('--num-classes', type=int, required=True,
                   help='number of classes including background (VOC: 21, COCO: 81)')
    p.add_argument('--ids', help='list file of the image ids to evaluate (default: every PNG '
                   'in PRED_DIR)')
    p.add_argument('--class-names', help="'VOC', 'COCO' or a comma-separated list (background "
                   'may be left out); default: VOC for 21 classes, COCO for 81')
    p.add_argument('--pred-ignore', choices=PRED_IGNORE_MODES, default='background',
                   help='a predicted 255 counts as background (default) or the pixel is skipped')
    p.add_argument('--convention', choices=MIOU_CONVENTIONS, default=DEFAULT_MIOU_CONVENTION,
                   help='the mean reported as mIoU: union (default; over classes in ground '
                   'truth or prediction), gt_present (over classes in the ground truth, '
                   'deeplab-pytorch), all_classes (plain mean over all classes, psa-style '
                   'eval.py); all three are printed and written')
    p.add_argument('--json', help='write the full result (per-class IoU, precision, recall, '
                   'confusion matrix) to this JSON file')
    p.add_argument('--workers', type=int, default=0, help='processes to read the PNGs with')
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_classes < 2 or args.num_classes > 255:
        parser.error('--num-classes must lie in 2..255 (background included)')
    try:
        names = resolve_class_names(args.class_names, args.num_classes)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        ids = read_ids(args.ids) if args.ids else None
        result = evaluate_dirs(args.pred_dir, args.gt_dir, args.num_classes, ids, names,
                               args.pred_ignore, args.workers, args.convention)
    except (DataFileError, ValueError) as exc:
        print(f'wsss-eval: {exc}', file=sys.stderr)
        return 1
    print(format_report(result))
    if args.json:
        write_json(args.json, result)
        print(f'json: {args.json}')
    return 0


if __name__ == '__main__':  # python -m wsss_core.evaluation.eval_cli
    sys.exit(main())
