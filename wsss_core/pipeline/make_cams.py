"""MakeCAMs: class activation maps of a trained classifier for every image of a split.

Per image, the ground-truth classes' maps after multi-scale + flip inference and per-class
max normalisation are written to ``cams/<id>.npz`` (class ids + float16 maps).  A
:class:`~wsss_core.pipeline.per_image.PerImageStage`: images whose file exists are skipped
(resume), and under torchrun or ``WSSS_SHARD=i/n`` each process does its share.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import numpy as np
import torch

from ..cams import DEFAULT_SCALES, multiscale_cams, normalize_cams
from ..datasets import build_dataset
from ..datasets.transforms import Resize
from ..io import save_cam
from ..registry import CAM_GENERATORS, STAGES, build, lookup
from .per_image import PerImageStage
from .artifacts import CAM_SET, TRAINED_MODEL
from .stage import StageContext


@STAGES.register_module()
class MakeCAMs(PerImageStage):
    """Write normalised CAMs of ``source``'s classifier for ``split``.

    Args:
        source: the training stage whose model is used.
        split: which image list (default 'train': pseudo labels are made for training images).
        generator: CAM generator config (CAM_GENERATORS), default plain ``CAM``.
        scales / flip: test-time augmentation (psa/irn default 1.0, 0.5, 1.5, 2.0 + flip).
        batch_size: images of equal size run through the network together.
        max_samples: only the first N images (quick runs).
        resize: ``Resize`` options (``short_side`` or ``size``) applied to each image before
            inference, as in training (e.g. OAA's ``dict(short_side=224)``); the maps are
            upsampled back to the image size.  Default: the image as it is.
    """

    reads = {'source': TRAINED_MODEL}
    produces = (CAM_SET,)
    output_file = ('cams', '.npz')
    progress_label = 'CAMs'

    def __init__(self, name: str, source: str, split: str = 'train',
                 generator: Optional[dict] = None, scales: Sequence[float] = DEFAULT_SCALES,
                 flip: bool = True, batch_size: int = 16, max_samples: Optional[int] = None,
                 resize: Optional[dict] = None):
        generator = dict(generator or dict(type='CAM'))
        lookup(CAM_GENERATORS, generator['type'])
        options = dict(source=source, split=split, generator=generator,
                       scales=[float(s) for s in scales], flip=bool(flip),
                       batch_size=int(batch_size), max_samples=max_samples,
                       resize=dict(resize) if resize else None)
        super().__init__(name, **options)
        self.resize = Resize(**resize) if resize else None

    def setup(self, ctx: StageContext) -> None:
        o = self.options
        self.model = self.read_input(ctx, 'source').load(ctx.device)
        self.generator = build(o['generator'], CAM_GENERATORS)
        self.generator.check_model(self.model, f'[{self.name}] MakeCAMs')
        self.dataset = build_dataset(ctx.data_cfg, split=o['split'], load_gt=False,
                                     max_samples=o['max_samples'])

    def process_todo(self, ctx: StageContext, todo: list, bar) -> list:
        """The to-do images in batches of one image size (:func:`batches_of_equal_size`)."""
        for batch in batches_of_equal_size(self.dataset, todo, self.options['batch_size']):
            self._process(ctx, batch)
            bar.update(len(batch))
        return []

    def summarise(self, ctx: StageContext, share) -> dict:
        return dict(artifacts=CAM_SET.record('cams', self.options['split'], self.dataset))

    def _process(self, ctx: StageContext, batch: List[dict]) -> None:
        o, model, generator = self.options, self.model, self.generator
        images = [s['img'] for s in batch]
        size = images[0].shape[:2]
        if self.resize is not None:
            images = [self.resize(dict(img=im))['img'] for im in images]
        img = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        img = model.data_preprocessor.normalize(img.to(ctx.device))
        class_ids = [np.flatnonzero(s['labels'] > 0).tolist() for s in batch]
        with torch.inference_mode(not generator.needs_grad):
            maps = multiscale_cams(generator, model, img, o['scales'], o['flip'], class_ids,
                                   out_size=size)
        for sample, cam in zip(batch, maps):
            ids = np.flatnonzero(sample['labels'] > 0)
            cams = normalize_cams(cam, ids).cpu().numpy() if ids.size else \
                np.zeros((0,) + cam.shape[-2:], np.float32)
            save_cam(Path(ctx.stage_dir) / 'cams' / f"{sample['img_id']}.npz", cams, ids)


def batches_of_equal_size(dataset, indices: Iterable[int], batch_size: int):
    """Yield lists of raw samples; a batch only holds images of one size."""
    batch: List[dict] = []
    for index in indices:
        sample = dataset.load_sample(index)
        if batch and (len(batch) == batch_size or batch[0]['img'].shape != sample['img'].shape):
            yield batch
            batch = []
        batch.append(sample)
    if batch:
        yield batch
