"""EvaluateWSOL: weakly supervised object localisation metrics of a trained classifier.

Per image of ``split`` (``docs/wsol_evaluation.md#protocol-per-image``): the image is resized
to ``image_size`` x ``image_size`` (PIL bilinear, as torchvision's ``Resize`` in the
reference), the classifier gives class scores (Top-1 / Top-5) and the CAM of the
**ground-truth** class; the CAM is resized bicubically to the square and normalised by
``mode``; the GT boxes (and masks) are brought to the square; then box accuracy over CAM
thresholds, Top-k Loc and PxAP are accumulated (:mod:`wsss_core.wsol`).

Writes ``wsol.json`` (the metrics, the BoxAcc curve per IoU threshold, best thresholds, the
PxAP curve) and, with ``save_scoremaps=True``, ``scoremaps/<image_id>.npy`` (the normalised
maps, float32).  Per-image results are stored in chunks under ``records/``; an interrupted
run reuses the finished chunks.
"""
from __future__ import annotations

import io as _io
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..datasets import build_dataset
from ..io import DataFileError, atomic_write, write_json
from ..pipeline.stage import Stage, StageContext, StageError
from ..pipeline.artifacts import TRAINED_MODEL
from ..registry import CAM_GENERATORS, STAGES, build, lookup
from .evaluator import WSOLEvaluator, stack_records, unstack_records

#: images per stored chunk of per-image results (the unit of resuming)
CHUNK = 256


@STAGES.register_module()
class EvaluateWSOL(Stage):
    """WSOL evaluation of ``source``'s classifier on ``split`` of a WSOL data set.

    Args:
        source: the TrainClassifier-like stage whose model is evaluated.
        split: which split (default 'test', the reporting split of the protocol).
        generator: CAM generator config (CAM_GENERATORS), default plain ``CAM``.
        mode: ``'standard'`` (wsolevaluation) or ``'moana-compat'`` (MoANA plugin; see
            :mod:`wsss_core.wsol.modes` for what each metric means).
        image_size: side of the square images and score maps (224).
        cam_curve_interval: CAM threshold step (0.01).
        iou_thresholds: IoU thresholds in percent (30, 50, 70).
        batch_size: images per forward pass.
        max_samples: only the first N images (quick runs).
        save_scoremaps: also write ``scoremaps/<image_id>.npy``.
    """

    reads = {'source': TRAINED_MODEL}
    #: the end-of-run table's rows (percentages; a mode without a key leaves its row out)
    headline_metrics = tuple((key, f'{key} (%)') for key in (
        'MaxBoxAccV2', 'MaxBoxAcc', 'GT-known Loc', 'Top-1 Loc', 'Top-5 Loc', 'Top-1 Cls',
        'PxAP'))

    def __init__(self, name: str, source: str, split: str = 'test',
                 generator: Optional[dict] = None, mode: str = 'standard',
                 image_size: int = 224, cam_curve_interval: float = 0.01,
                 iou_thresholds: Sequence[int] = (30, 50, 70), batch_size: int = 32,
                 max_samples: Optional[int] = None, save_scoremaps: bool = False):
        generator = dict(generator or dict(type='CAM'))
        lookup(CAM_GENERATORS, generator['type'])
        super().__init__(name, source=source, split=split, generator=generator, mode=mode,
                         image_size=int(image_size), cam_curve_interval=float(cam_curve_interval),
                         iou_thresholds=[int(d) for d in iou_thresholds],
                         batch_size=int(batch_size), max_samples=max_samples,
                         save_scoremaps=bool(save_scoremaps))
        try:  # bad mode / thresholds fail when the config is built, not after inference
            self.evaluator = WSOLEvaluator(mode, image_size, cam_curve_interval, iou_thresholds)
        except ValueError as exc:
            raise StageError(f"EvaluateWSOL '{name}': {exc}") from exc

    def run(self, ctx: StageContext) -> dict:
        o = self.options
        model = self.read_input(ctx, 'source').load(ctx.device)
        generator = build(o['generator'], CAM_GENERATORS)
        dataset = build_dataset(ctx.data_cfg, split=o['split'], load_gt=True,
                                max_samples=o['max_samples'])
        stage_dir = Path(ctx.stage_dir)
        records: List[dict] = []
        computed = 0
        bar = tqdm(total=len(dataset), desc=f'[{self.name}] WSOL', unit='img',
                   disable=not ctx.progress)
        for start in range(0, len(dataset), CHUNK):
            indices = list(range(start, min(start + CHUNK, len(dataset))))
            ids = [dataset.records[i].img_id for i in indices]
            path = stage_dir / 'records' / f'{start:08d}.npz'
            chunk = _load_chunk(path, ids)
            if chunk is None:
                chunk = []
                for b in range(0, len(indices), o['batch_size']):
                    batch = [dataset.load_sample(i) for i in indices[b:b + o['batch_size']]]
                    chunk.extend(self._process(batch, model, generator, stage_dir, ctx.device))
                    bar.update(len(batch))
                _save_chunk(path, ids, chunk)
                computed += len(indices)
            else:
                bar.update(len(indices))
            records.extend(chunk)
        bar.close()
        metrics, detail = self.evaluator.summarize(records)
        write_json(stage_dir / 'wsol.json',
                   dict(metrics=metrics, split=o['split'], source=o['source'], **detail))
        artifacts = dict(wsol='wsol.json', split=o['split'], mode=self.evaluator.mode.name)
        if o['save_scoremaps']:
            artifacts['scoremaps'] = 'scoremaps'
        return dict(metrics=metrics, artifacts=artifacts,
                    counts=dict(images=len(dataset), computed=computed,
                                reused=len(dataset) - computed))

    # ------------------------------------------------------------------ per batch
    def _process(self, batch: List[dict], model, generator, stage_dir: Path,
                 device: str) -> List[dict]:
        ev = self.evaluator
        size = ev.image_size
        labels = [_gt_label(s) for s in batch]
        img = torch.from_numpy(np.stack([_resize_square(s['img'], size) for s in batch]))
        img = model.data_preprocessor.normalize(img.permute(0, 3, 1, 2).to(device))
        with torch.inference_mode():
            scores = model(img, mode='tensor').float().cpu().numpy()
        with torch.inference_mode(not generator.needs_grad):
            maps = generator(model, img, [[c] for c in labels])
        out = []
        for i, (sample, label) in enumerate(zip(batch, labels)):
            scoremap = ev.scoremap(maps[i, label].detach().float().cpu().numpy())
            if self.options['save_scoremaps']:
                _save_scoremap(stage_dir / 'scoremaps' / f"{sample['img_id']}.npy", scoremap)
            boxes = sample.get('gt_boxes')
            if boxes is None and 'gt_mask' not in sample:
                raise DataFileError(f"image {sample['img_id']}: no GT boxes or masks; "
                                    f"split {self.options['split']!r} has no localization")
            boxes = None if boxes is None else ev.gt_boxes(boxes, _ori_size(sample))
            fg, ignore = (ev.masks(sample['gt_mask'], sample.get('ignore_mask'))
                          if 'gt_mask' in sample else (None, None))
            out.append(ev.record(scoremap, boxes, scores[i], label, fg, ignore))
        return out


def _gt_label(sample: dict) -> int:
    if sample.get('gt_label') is not None:
        return int(sample['gt_label'])
    present = np.flatnonzero(np.asarray(sample['labels']) > 0)
    if present.size != 1:
        raise DataFileError(f"image {sample['img_id']}: WSOL needs exactly one class per image,"
                            f' got {present.tolist()}')
    return int(present[0])


def _ori_size(sample: dict):
    if sample.get('ori_size') is not None:
        return tuple(int(v) for v in sample['ori_size'])
    h, w = sample['img'].shape[:2]
    return w, h


def _resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8 by PIL bilinear (torchvision ``Resize((size, size))``)."""
    if img.shape[:2] == (size, size):
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def _save_scoremap(path: Path, scoremap: np.ndarray) -> None:
    buf = _io.BytesIO()
    np.save(buf, np.asarray(scoremap, dtype=np.float32))
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def _save_chunk(path: Path, ids: List[str], records: List[dict]) -> None:
    buf = _io.BytesIO()
    np.savez_compressed(buf, img_ids=np.asarray(ids), **stack_records(records))
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def _load_chunk(path: Path, ids: List[str]) -> Optional[List[dict]]:
    """The stored records of a chunk, or None when absent, unreadable or for other images."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if data['img_ids'].tolist() != ids:
                return None
            return unstack_records({k: data[k] for k in data.files})
    except Exception:  # a corrupted chunk is recomputed
        return None
