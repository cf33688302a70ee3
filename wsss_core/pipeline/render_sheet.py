"""RenderSheet: one PNG that shows, for a few images, the image, ground truth, CAMs and labels.

Columns: image | ground truth | CAM of each labelled class (overlaid) | each pseudo-label
stage (overlaid).  Rows: the first ``num_images`` images of the CAM stage's split.  When none
of these images has a ground-truth mask (data with image tags only), the ground-truth column
is left out.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..datasets import build_dataset
from ..io import load_cam, read_label_png
from ..registry import STAGES
from ..visualization.overlay import overlay_cam, overlay_label
from ..visualization.sheet import save_sheet
from .artifacts import CAM_SET, LABEL_SET, PREDICTIONS
from .stage import Stage, StageContext


@STAGES.register_module()
class RenderSheet(Stage):
    """Write ``sheet.png`` from ``cams`` and the ``labels`` stages."""

    reads = {'cams': CAM_SET, 'labels': (LABEL_SET, PREDICTIONS)}

    def __init__(self, name: str, cams: str, labels: Sequence[str] = (), num_images: int = 6,
                 max_cams: int = 2, cell_size: int = 128):
        super().__init__(name, cams=cams, labels=list(labels), num_images=int(num_images),
                         max_cams=int(max_cams), cell_size=int(cell_size))

    def run(self, ctx: StageContext) -> dict:
        o = self.options
        cams = self.read_input(ctx, 'cams')
        dataset = build_dataset(ctx.data_cfg, split=cams.split, max_samples=o['num_images'])
        cam_dir = cams.folder
        label_dirs = [self.read_input(ctx, 'labels', s).folder for s in o['labels']]
        rows, names = [], []
        for index, rec in enumerate(dataset.records):
            sample = dataset.load_sample(index)
            rows.append(self._row(sample, cam_dir, label_dirs, dataset))
            names.append(rec.img_id)
        titles = ['image', 'ground truth'] + [f'CAM {i + 1}' for i in range(o['max_cams'])] + \
            list(o['labels'])
        if rows and all(row[1] is None for row in rows):   # no masks: no empty column
            rows = [row[:1] + row[2:] for row in rows]
            titles = titles[:1] + titles[2:]
        path = Path(ctx.stage_dir) / 'sheet.png'
        save_sheet(path, rows, titles=titles, row_labels=None, cell_size=o['cell_size'])
        return dict(artifacts=dict(sheet='sheet.png'), counts=dict(images=len(rows)))

    def _row(self, sample: dict, cam_dir: Path, label_dirs, dataset) -> list:
        img = sample['img']
        gt = sample.get('gt_seg')
        row = [img, overlay_label(img, gt) if gt is not None else None]
        cams, _ = load_cam(cam_dir / f"{sample['img_id']}.npz")
        for k in range(self.options['max_cams']):
            row.append(overlay_cam(img, cams[k]) if k < len(cams) else None)
        for d in label_dirs:
            label = read_label_png(d / f"{sample['img_id']}.png", dataset.num_classes)
            row.append(overlay_label(img, label))
        return row

