"""DropSmallRegions: pseudo labels without their specks.

A region is a 4-connected set of pixels (neighbours share an edge) of one label value
``c`` in 0..C (background included).  With ``R(x)`` the region holding pixel x,

    y'(x) = 255       if y(x) != 255 and |R(x)| < min_pixels
    y'(x) = y(x)      otherwise

so ``min_pixels = 1`` changes nothing.  Specks are where CAM-made labels are least reliable;
as ignore (255) they stay out of a segmenter's loss and out of the labels' precision.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from wsss_core.datasets import build_dataset
from wsss_core.io import IGNORE_INDEX, read_label_png, save_label_png
from wsss_core.pipeline.artifacts import LABEL_SET
from wsss_core.pipeline.per_image import PerImageStage
from wsss_core.pipeline.stage import StageError
from wsss_core.registry import STAGES


def drop_small_regions(label: np.ndarray, min_pixels: int) -> np.ndarray:
    """The rule of the module docstring on one (H, W) uint8 label map (a new array)."""
    label = np.asarray(label, np.uint8)
    out = label.copy()
    for value in np.unique(label[label != IGNORE_INDEX]):
        _, regions, stats, _ = cv2.connectedComponentsWithStats(
            (label == value).astype(np.uint8), connectivity=4)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_pixels)
        out[np.isin(regions, small[small != 0])] = IGNORE_INDEX   # region 0: not this value
    return out


@STAGES.register_module()
class DropSmallRegions(PerImageStage):
    """Reads a label set (``labels=``), produces a label set (``labels/<id>.png``).

    Args:
        labels: the stage whose pseudo labels are cleaned; its split is used.
        min_pixels: regions with fewer pixels become ignore (255).
    """

    reads = {'labels': LABEL_SET}
    produces = (LABEL_SET,)
    output_file = ('labels', '.png')
    progress_label = 'labels'

    def __init__(self, name: str, labels: str, min_pixels: int = 16):
        if int(min_pixels) < 1:
            raise StageError(f'[{name}] min_pixels must be >= 1, got {min_pixels}')
        super().__init__(name, labels=labels, min_pixels=int(min_pixels))

    def setup(self, ctx) -> None:
        self.source = self.read_input(ctx, 'labels')
        self.dataset = build_dataset(ctx.data_cfg, split=self.source.split, load_gt=False)

    def process(self, ctx, item) -> None:
        img_id = self.dataset.records[item].img_id
        label = drop_small_regions(read_label_png(self.source.path(img_id)),
                                   self.options['min_pixels'])
        save_label_png(Path(ctx.stage_dir) / 'labels' / f'{img_id}.png', label)

    def summarise(self, ctx, share) -> dict:
        return dict(artifacts=LABEL_SET.record('labels', self.source.split, self.dataset))
