"""RefineLabels: turn the CAMs of an earlier stage into pseudo-label PNGs with refiners.

Each image's CAMs go through the chain of ``refiners`` (LABEL_REFINERS); the result is
written as a palettised PNG ``labels/<id>.png``.  A
:class:`~wsss_core.pipeline.per_image.PerImageStage`: existing files are kept (resume), with
``workers = n > 1`` the images are spread over ``n`` processes (the labels are the same as
inline), and under torchrun or ``WSSS_SHARD=i/n`` each process labels its share.

``extra_cams`` hands a chain the CAMs of further stages besides ``cams`` (e.g. NSROM's
potential object mining reads the plain classifier's CAMs after the proxy labels were made
from the integral model's): ``extra_cams=dict(plain_cams='cams')`` puts stage ``cams``'s
maps of each image in ``sample['plain_cams']`` and their class ids in
``sample['plain_cams_class_ids']``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

from ..datasets import build_dataset
from ..refiners.parallel import RefineChainJob
from ..registry import LABEL_REFINERS, STAGES, build, lookup
from .artifacts import CAM_SET, LABEL_SET
from .per_image import PerImageStage
from .stage import StageContext, StageError

#: sample keys a refiner chain already uses; ``extra_cams`` may not overwrite them
RESERVED_SAMPLE_KEYS = frozenset({'img_id', 'cams', 'class_ids', 'img', 'saliency', 'label'})


def check_extra_cams(name: str, extra_cams) -> Dict[str, str]:
    """``extra_cams`` as a plain ``{key: stage}`` dict, or a :class:`StageError` saying why not."""
    if not isinstance(extra_cams, dict):
        raise StageError(f"[{name}] extra_cams must be a dict {{sample key: stage name}}, "
                         f'got {extra_cams!r}')
    out = {}
    for key, stage in extra_cams.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise StageError(f'[{name}] extra_cams key {key!r} must be a plain identifier')
        if not isinstance(stage, str) or not stage:
            raise StageError(f"[{name}] extra_cams['{key}'] must name a stage, got {stage!r}")
        clash = {key, f'{key}_class_ids'} & RESERVED_SAMPLE_KEYS
        if clash:
            raise StageError(f'[{name}] extra_cams key {key!r} would overwrite the sample '
                             f'key(s) {sorted(clash)}; pick another name')
        out[key] = stage
    for key in out:
        if f'{key}_class_ids' in out:
            raise StageError(f"[{name}] extra_cams keys '{key}' and '{key}_class_ids' clash "
                             f"(the latter holds the class ids of the former)")
    return out


@STAGES.register_module()
class RefineLabels(PerImageStage):
    """Pseudo labels from ``cams`` (a MakeCAMs-like stage) through ``refiners``.

    Args:
        cams: the stage whose ``cams/<id>.npz`` are read; its split is used.
        refiners: LABEL_REFINERS configs applied in order (default background threshold 0.25).
        workers: processes for the chain (0 or 1: inline).  Not part of the config hash:
            it does not change the labels.
        extra_cams: ``{sample key: stage}`` -- more CAM-producing stages (same split as
            ``cams``) whose maps each sample carries as ``sample[key]`` (K, H, W) float32
            with ``sample[key + '_class_ids']`` (K,).
    """

    reads = {'cams': CAM_SET, 'extra_cams': CAM_SET}
    produces = (LABEL_SET,)
    counted = ('images', 'computed')   # its manifests never had 'reused'
    output_file = ('labels', '.png')
    progress_label = 'labels'

    def __init__(self, name: str, cams: str, refiners: Optional[Sequence[dict]] = None,
                 workers: int = 0, extra_cams: Optional[Dict[str, str]] = None):
        refiners = [dict(r) for r in (refiners or [dict(type='BackgroundThreshold')])]
        for r in refiners:
            lookup(LABEL_REFINERS, r['type'])
        options = dict(cams=cams, refiners=refiners,
                       extra_cams=check_extra_cams(name, extra_cams) if extra_cams else None)
        super().__init__(name, **options)
        if int(workers) < 0:
            raise ValueError(f'workers must be >= 0, got {workers}')
        self.workers = int(workers)

    def _extra_cam_dirs(self, ctx: StageContext, split: str) -> Dict[str, Path]:
        """``{sample key: CAM folder}`` of ``extra_cams``, checked against the main split."""
        dirs = {}
        for key, stage in (self.options['extra_cams'] or {}).items():
            cams = self.read_input(ctx, 'extra_cams', stage)
            if cams.split != split:
                raise StageError(
                    f"[{self.name}] extra_cams['{key}']: stage '{stage}' made CAMs of split "
                    f"{cams.split!r}, but cams='{self.options['cams']}' covers split "
                    f'{split!r}; both must cover the same images')
            dirs[key] = cams.folder
        return dirs

    def setup(self, ctx: StageContext) -> None:
        cams = self.read_input(ctx, 'cams')
        self.cam_dir = cams.folder
        self.extra_dirs = self._extra_cam_dirs(ctx, cams.split)
        self.split = cams.split
        self.dataset = build_dataset(ctx.data_cfg, split=cams.split, load_gt=False)

    def job(self, ctx: StageContext) -> RefineChainJob:
        refiners = [build(r, LABEL_REFINERS) for r in self.options['refiners']]
        return RefineChainJob(self.dataset, refiners, self.cam_dir,
                              Path(ctx.stage_dir) / 'labels', extra_cam_dirs=self.extra_dirs)

    def summarise(self, ctx: StageContext, share) -> dict:
        return dict(artifacts=LABEL_SET.record('labels', self.split, self.dataset))
