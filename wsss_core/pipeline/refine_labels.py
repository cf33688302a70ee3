"""RefineLabels: turn the CAMs of an earlier stage into pseudo-label PNGs with refiners.

Each image's CAMs go through the chain of ``refiners`` (LABEL_REFINERS); the result is
written as a palettised PNG ``labels/<id>.png``.  Existing files are kept (resume).
With ``workers = n > 1`` the images are spread over ``n`` processes
(:func:`~wsss_core.refiners.parallel.map_images`); the labels are the same as inline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..datasets import build_dataset
from ..refiners.parallel import RefineChainJob, map_images
from ..registry import LABEL_REFINERS, STAGES, build, lookup
from .stage import Stage, StageContext


@STAGES.register_module()
class RefineLabels(Stage):
    """Pseudo labels from ``cams`` (a MakeCAMs-like stage) through ``refiners``.

    Args:
        cams: the stage whose ``cams/<id>.npz`` are read; its split is used.
        refiners: LABEL_REFINERS configs applied in order (default background threshold 0.25).
        workers: processes for the chain (0 or 1: inline).  Not part of the config hash:
            it does not change the labels.
    """

    input_keys = ('cams',)

    def __init__(self, name: str, cams: str, refiners: Optional[Sequence[dict]] = None,
                 workers: int = 0):
        refiners = [dict(r) for r in (refiners or [dict(type='BackgroundThreshold')])]
        for r in refiners:
            lookup(LABEL_REFINERS, r['type'])
        super().__init__(name, cams=cams, refiners=refiners)
        if int(workers) < 0:
            raise ValueError(f'workers must be >= 0, got {workers}')
        self.workers = int(workers)

    def run(self, ctx: StageContext) -> dict:
        src = ctx.manifest_of(self.options['cams'])['artifacts']
        cam_dir = ctx.stage_path(self.options['cams']) / src['cams']
        refiners = [build(r, LABEL_REFINERS) for r in self.options['refiners']]
        dataset = build_dataset(ctx.data_cfg, split=src['split'], load_gt=False)
        out_dir = Path(ctx.stage_dir) / 'labels'
        todo = [i for i, rec in enumerate(dataset.records)
                if not (out_dir / f'{rec.img_id}.png').is_file()]
        job = RefineChainJob(dataset, refiners, cam_dir, out_dir)
        map_images(job, todo, workers=self.workers, desc=f'[{self.name}] labels',
                   progress=ctx.progress)
        return dict(counts=dict(images=len(dataset), computed=len(todo)),
                    artifacts=dict(labels='labels', split=src['split'],
                                   num_classes=dataset.num_classes,
                                   class_names=list(dataset.class_names)))
