"""ExportAttention: accumulated attention maps at image size, as CAM artifacts
(``docs/methods/oaa.md#26-exporting-the-accumulated-maps``, the reference's ``res.py``).

For every image of ``split`` and each of its ground-truth classes c, the accumulated map
``<source>/accumulated/<id>.npz`` (CAM resolution, [0, 1]) becomes::

    U = clip(bicubic_resize(A_c, image size), 0, 1)     (the reference resizes 8-bit PNGs,
                                                         which saturate the overshoot)
    M = (U - min U) / (max U - min U)                   (all zeros for a constant map)
    M = floor(255 M) / 255                              only with quantize=True (uint8 files)

written to ``cams/<id>.npz`` in the core CAM format, class ids = the image's ground-truth
ids, so the core's ``EvaluateLabels(cams=...)`` and ``RefineLabels(cams=...)`` read them.
A :class:`~wsss_core.pipeline.per_image.PerImageStage`: existing files are kept (an
interrupted run resumes), and under torchrun or ``WSSS_SHARD=i/n`` each process exports its
share of the images (the counts, ``zero_filled_maps`` included, add up over shards).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsss_core.datasets import build_dataset
from wsss_core.io import DataFileError, load_cam, save_cam
from wsss_core.pipeline.artifacts import CAM_SET, FEATURE_CAMS
from wsss_core.pipeline.per_image import PerImageStage
from wsss_core.pipeline.stage import StageContext, StageError
from wsss_core.registry import STAGES



def zoom_attention(maps: np.ndarray, size: Tuple[int, int], quantize: bool = False) -> np.ndarray:
    """(K, h, w) maps in [0, 1] -> (K, H, W) float32: bicubic resize, clip to [0, 1],
    per-map min-max normalisation, optional 8-bit truncation (module docstring)."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[0] == 0:
        return np.zeros((0, *size), np.float32)
    up = F.interpolate(torch.from_numpy(maps)[:, None], size=tuple(size), mode='bicubic',
                       align_corners=False)[:, 0].clamp_(0.0, 1.0)
    lo = up.amin(dim=(1, 2), keepdim=True)
    span = up.amax(dim=(1, 2), keepdim=True) - lo
    out = torch.where(span > 0, (up - lo) / span.clamp_min(1e-12), torch.zeros_like(up))
    if quantize:
        out = torch.floor(out * 255.0) / 255.0
    return out.numpy()


def image_size(path) -> Tuple[int, int]:
    """(H, W) of an image file, from its header."""
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except FileNotFoundError:
        raise DataFileError(f'image not found: {path}') from None
    except Exception as exc:
        raise DataFileError(f'cannot read image {path}: {exc}') from exc


@STAGES.register_module()
class ExportAttention(PerImageStage):
    """Write ``source``'s accumulated attention at image size as CAMs for ``split``.

    Args:
        source: the training stage that ran ``OAAAccumulationHook``.
        split: image list (default 'train', the images that were accumulated).
        quantize: truncate to 8 bit after x255 as the reference's PNG files.
        missing: ``'error'`` (default) for an image/class without an accumulated map, or
            ``'zeros'`` to write an all-zero map for it.
        max_samples: only the first N images (quick runs).
    """

    reads = {'source': FEATURE_CAMS}
    produces = (CAM_SET,)
    output_file = ('cams', '.npz')
    progress_label = 'attention'

    def __init__(self, name: str, source: str, split: str = 'train', quantize: bool = False,
                 missing: str = 'error', max_samples: Optional[int] = None):
        if missing not in ('error', 'zeros'):
            raise StageError(f"ExportAttention '{name}': missing must be 'error' or 'zeros', "
                             f'not {missing!r}')
        super().__init__(name, source=source, split=split, quantize=bool(quantize),
                         missing=missing, max_samples=max_samples)

    def setup(self, ctx: StageContext) -> None:
        o = self.options
        self.src_dir = self.read_input(ctx, 'source').folder
        self.dataset = build_dataset(ctx.data_cfg, split=o['split'], load_gt=False,
                                     max_samples=o['max_samples'])

    def process(self, ctx: StageContext, index: int) -> int:
        """Export image ``index``; returns how many of its maps were zero-filled."""
        rec = self.dataset.records[index]
        ids = np.asarray(sorted(rec.class_ids), dtype=np.int64)
        maps, n_missing = self._accumulated(self.src_dir, rec.img_id, ids,
                                            self.dataset.class_names)
        cams = zoom_attention(maps, image_size(rec.img_path), self.options['quantize'])
        save_cam(self.outputs(ctx, index)[0], cams, ids)
        return n_missing

    def summarise(self, ctx: StageContext, share) -> dict:
        return dict(counts=dict(zero_filled_maps=sum(share.results)),
                    artifacts=CAM_SET.record('cams', self.options['split'], self.dataset))

    def _accumulated(self, src_dir: Path, img_id: str, ids: np.ndarray,
                     class_names: Sequence[str]) -> Tuple[np.ndarray, int]:
        """The accumulated maps of ``ids`` in that order, (K, h, w); zero maps if allowed."""
        path = src_dir / f'{img_id}.npz'
        zeros_ok = self.options['missing'] == 'zeros'
        if path.is_file():
            maps, have = load_cam(path)
        elif zeros_ok or ids.size == 0:
            maps, have = np.zeros((0, 1, 1), np.float32), np.zeros(0, np.int64)
        else:
            raise DataFileError(f'no accumulated attention for image {img_id} ({path}); '
                                "set missing='zeros' to export zero maps")
        index = {int(c): i for i, c in enumerate(have)}
        lacking = [int(c) for c in ids if int(c) not in index]
        if lacking and not zeros_ok:
            names = [class_names[c] for c in lacking]
            raise DataFileError(f'{path}: no accumulated attention for image {img_id}, '
                                f"class(es) {lacking} {names}; set missing='zeros' to export "
                                'zero maps')
        shape = maps.shape[1:]
        out = np.stack([maps[index[int(c)]] if int(c) in index else np.zeros(shape, np.float32)
                        for c in ids]) if ids.size else np.zeros((0, *shape), np.float32)
        return out, len(lacking)
