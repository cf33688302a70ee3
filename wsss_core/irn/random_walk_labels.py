"""RandomWalkLabels: irn's ``make_sem_seg_labels`` -- CAMs propagated over the class-boundary
map of a trained inter-pixel relation network (IRN) into pseudo-label PNGs.

Per image of the CAM stage's split:

1. boundary ``B`` at stride 4 with flip averaging,
   ``B = (b(x) + flip(b(flip(x)))) / 2`` for the normalised image ``x`` (the model's
   ``boundary_map`` already returns probabilities; irn averages the logits before its sigmoid);
2. stride-4 seeds from the CAM stage's full-resolution normalised CAMs of the ground-truth
   classes: the mean over each 4 x 4 cell (the last row/column cell over the pixels it covers),
   so cell ``(y, x)`` summarises pixels ``4y..4y+3, 4x..4x+3``.  irn instead resizes every
   scale's network output to the stride-4 grid and sums over scales before normalising; both
   are per-class max-normalised maps of the same classes, ours derived from the stored ones;
3. :func:`~wsss_core.irn.random_walk.propagate_cams`: seeds ``M (1 - B)``, random walk
   (radius, beta, 2^exp_times steps), x4 upsampling, crop, global max, background plane
   ``bg_threshold``, argmax -> ``labels/<id>.png`` (palettised; existing files are kept).

A :class:`~wsss_core.pipeline.per_image.PerImageStage`: under torchrun or ``WSSS_SHARD=i/n``
each process labels its share of the images.

The artifacts are those of RefineLabels (``labels``, ``split``, ``num_classes``,
``class_names``), so EvaluateLabels and a segmentor's training stage read them alike.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets import build_dataset
from ..io import check_label_values, load_cam, save_label_png
from ..pipeline.per_image import PerImageStage
from ..pipeline.stage import StageContext, StageError
from ..models.protocols import BoundaryModel, require_model
from ..pipeline.artifacts import CAM_SET, LABEL_SET, TRAINED_MODEL
from ..registry import STAGES
from .random_walk import propagate_cams

__all__ = ['RandomWalkLabels', 'flip_averaged_boundary', 'stride4_cams']

STRIDE = 4


def flip_averaged_boundary(model, img: np.ndarray, device='cpu') -> torch.Tensor:
    """``(ceil(H/4), ceil(W/4))`` boundary map of a uint8 ``(H, W, 3)`` image:
    ``(b(x) + flip(b(flip(x)))) / 2`` with ``x`` normalised by ``model.data_preprocessor``;
    the image and its mirror run as one batch of two."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].to(device)
    x = model.data_preprocessor.normalize(x)
    with torch.inference_mode():
        b = model.boundary_map(torch.cat([x, x.flip(-1)]))
    grid = (math.ceil(img.shape[0] / STRIDE), math.ceil(img.shape[1] / STRIDE))
    if b.dim() != 4 or b.shape[:2] != (2, 1) or tuple(b.shape[2:]) != grid:
        raise StageError(f'{type(model).__name__}.boundary_map returned shape {tuple(b.shape)} '
                         f'for 2 images of {img.shape[0]}x{img.shape[1]}; expected '
                         f'(2, 1, {grid[0]}, {grid[1]}) (stride 4, rounded up)')
    return ((b[0, 0] + b[1, 0].flip(-1)) / 2).float()


def stride4_cams(cams: torch.Tensor) -> torch.Tensor:
    """``(K, H, W)`` -> ``(K, ceil(H/4), ceil(W/4))``: the mean of each 4 x 4 cell (partial cells
    at the bottom/right average only the pixels they cover)."""
    if cams.shape[0] == 0:
        h, w = (math.ceil(s / STRIDE) for s in cams.shape[1:])
        return cams.new_zeros((0, h, w))
    return F.avg_pool2d(cams[None], STRIDE, STRIDE, ceil_mode=True)[0]


@STAGES.register_module()
class RandomWalkLabels(PerImageStage):
    """Pseudo labels by IRN random-walk propagation (irn ``make_sem_seg_labels``).

    Args:
        cams: a MakeCAMs-like stage (``cams/<id>.npz``, full-resolution normalised CAMs of the
            ground-truth classes); its split is labelled.
        irn: a TrainIRN-like stage whose manifest records ``model`` and ``weights``; the model
            has ``data_preprocessor.normalize`` and ``boundary_map(img) -> (B, 1, ceil(H/4),
            ceil(W/4))`` probabilities.
        radius: pair radius of the walk's affinities on the stride-4 grid (irn 5).
        beta: affinity exponent (irn 10).
        exp_times: the walk takes ``2 ** exp_times`` steps (irn 8: 256).
        bg_threshold: constant background score after the global-max normalisation (irn 0.25).
    """

    reads = {'cams': CAM_SET, 'irn': TRAINED_MODEL}
    produces = (LABEL_SET,)
    output_file = ('labels', '.png')
    progress_label = 'random walk'

    def __init__(self, name: str, cams: str, irn: str, radius: int = 5, beta: float = 10,
                 exp_times: int = 8, bg_threshold: float = 0.25):
        if int(radius) < 2:
            raise StageError(f'[{name}] radius must be >= 2, got {radius}')
        if float(beta) <= 0:
            raise StageError(f'[{name}] beta must be > 0, got {beta}')
        if int(exp_times) < 0:
            raise StageError(f'[{name}] exp_times must be >= 0, got {exp_times}')
        super().__init__(name, cams=cams, irn=irn, radius=int(radius), beta=float(beta),
                         exp_times=int(exp_times), bg_threshold=float(bg_threshold))

    def setup(self, ctx: StageContext) -> None:
        o = self.options
        cams = self.read_input(ctx, 'cams')
        self.cam_dir, self.split = cams.folder, cams.split
        self.model = require_model(self.read_input(ctx, 'irn').load(ctx.device), BoundaryModel,
                                   f"[{self.name}] RandomWalkLabels (irn='{o['irn']}')")
        self.dataset = build_dataset(ctx.data_cfg, split=cams.split, load_gt=False)

    def summarise(self, ctx: StageContext, share) -> dict:
        return dict(artifacts=LABEL_SET.record('labels', self.split, self.dataset))

    def process(self, ctx: StageContext, index: int) -> None:
        """Steps 1-3 of the module docstring for data set image ``index``."""
        o, dataset = self.options, self.dataset
        sample = dataset.load_sample(index)
        img_id, img = sample['img_id'], sample['img']
        cams, class_ids = load_cam(self.cam_dir / f'{img_id}.npz')
        if cams.shape[1:] != img.shape[:2]:
            raise StageError(f'[{self.name}] CAMs of {img_id} are {cams.shape[1:]}, the image is '
                             f'{img.shape[:2]}: RandomWalkLabels needs full-resolution CAMs')
        boundary = flip_averaged_boundary(self.model, img, ctx.device)
        seeds = stride4_cams(torch.from_numpy(cams).to(boundary.device))
        label = propagate_cams(seeds, boundary, class_ids, img.shape[:2], radius=o['radius'],
                               beta=o['beta'], exp_times=o['exp_times'],
                               bg_threshold=o['bg_threshold'])
        check_label_values(label, dataset.num_classes, f'pseudo label of {img_id}')
        save_label_png(self.outputs(ctx, index)[0], label)
