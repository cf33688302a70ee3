"""RefineLabels: turn the CAMs of an earlier stage into pseudo-label PNGs with refiners.

Each image's CAMs go through the chain of ``refiners`` (LABEL_REFINERS); the result is
written as a palettised PNG ``labels/<id>.png``.  Existing files are kept (resume).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from tqdm import tqdm

from ..datasets import build_dataset
from ..io import check_label_values, load_cam, save_label_png
from ..registry import LABEL_REFINERS, STAGES, build, lookup
from .stage import Stage, StageContext


@STAGES.register_module()
class RefineLabels(Stage):
    """Pseudo labels from ``cams`` (a MakeCAMs-like stage) through ``refiners``.

    Args:
        cams: the stage whose ``cams/<id>.npz`` are read; its split is used.
        refiners: LABEL_REFINERS configs applied in order (default background threshold 0.25).
    """

    input_keys = ('cams',)

    def __init__(self, name: str, cams: str, refiners: Optional[Sequence[dict]] = None):
        refiners = [dict(r) for r in (refiners or [dict(type='BackgroundThreshold')])]
        for r in refiners:
            lookup(LABEL_REFINERS, r['type'])
        super().__init__(name, cams=cams, refiners=refiners)

    def run(self, ctx: StageContext) -> dict:
        src = ctx.manifest_of(self.options['cams'])['artifacts']
        cam_dir = ctx.stage_path(self.options['cams']) / src['cams']
        refiners = [build(r, LABEL_REFINERS) for r in self.options['refiners']]
        needs = {k for r in refiners for k in getattr(r, 'needs', ())}
        dataset = build_dataset(ctx.data_cfg, split=src['split'], load_gt=False)
        out_dir = Path(ctx.stage_dir) / 'labels'
        todo = [i for i, rec in enumerate(dataset.records)
                if not (out_dir / f'{rec.img_id}.png').is_file()]
        for index in tqdm(todo, desc=f'[{self.name}] labels', unit='img', disable=not ctx.progress):
            sample = self._sample(dataset, index, cam_dir, needs)
            for refiner in refiners:
                sample = refiner(sample)
            check_label_values(sample['label'], dataset.num_classes,
                               f"pseudo label of {sample['img_id']}")
            save_label_png(out_dir / f"{sample['img_id']}.png", sample['label'])
        return dict(counts=dict(images=len(dataset), computed=len(todo)),
                    artifacts=dict(labels='labels', split=src['split'],
                                   num_classes=dataset.num_classes,
                                   class_names=list(dataset.class_names)))

    @staticmethod
    def _sample(dataset, index: int, cam_dir: Path, needs: set) -> dict:
        rec = dataset.records[index]
        cams, class_ids = load_cam(cam_dir / f'{rec.img_id}.npz')
        sample = dict(img_id=rec.img_id, cams=cams, class_ids=class_ids)
        if needs & {'img', 'saliency'}:
            raw = dataset.load_sample(index)
            sample.update({k: raw.get(k) for k in ('img', 'saliency')})
        return sample
