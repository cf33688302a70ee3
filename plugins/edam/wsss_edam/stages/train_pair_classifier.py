"""TrainPairClassifier: :class:`~wsss_core.pipeline.train_classifier.TrainClassifier` on image
pairs that share a class (EDAM's training data, ``docs/methods/edam.md#7-training``).

The training set is :class:`~wsss_edam.datasets.image_pairs.ImagePairs` over ``train_split``
(each image through the stage's ``pipeline`` on its own), walked in list order by
:class:`~wsss_edam.datasets.image_pairs.PairEpochSampler` and batched by
:func:`~wsss_edam.datasets.image_pairs.collate_pairs`: a batch of ``batch_size`` pairs is a
``(2 batch_size, ...)`` image batch whose rows ``2p, 2p + 1`` are pair ``p`` -- what
``EDAMClassifier`` expects.  With ``passes = N`` the pair list holds N pairs per image, so
**one epoch equals N epochs over the images** (EDAM: passes 25, max_epochs 1).

Validation is TrainClassifier's (single images, mAP), in batches of ``2 batch_size`` images.
The pair list is written to ``pairs.txt`` (``<id_a> <id_b> <shared classes>`` per line, the
reference's ``EDAM_train.txt`` with all shared classes) and the manifest records the number of
pairs and passes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from mmengine.dist import get_dist_info

from wsss_core.io import atomic_write
from wsss_core.pipeline.stage import StageContext
from wsss_core.pipeline.train_classifier import TrainClassifier
from wsss_core.registry import STAGES

from ..datasets.image_pairs import ImagePairs
from ..optim.edam_optim import warmup_poly_schedule

PAIR_LIST = 'pairs.txt'


@STAGES.register_module()
class TrainPairClassifier(TrainClassifier):
    """Train a classifier on image pairs sharing a class.

    Args:
        passes: pairs per image in the list (one epoch = ``passes`` image epochs).
        pair_seed: seed of the pair list (default: the run's seed, 0 without one).
        batch_size: *pairs* per batch (``2 batch_size`` images).
        warmup_steps / power: EDAM's default schedule when ``param_scheduler`` is not given:
            linear warm-up from 0.1 lr over ``warmup_steps`` (2000), then poly ``power`` (0.9)
            to the last step (:func:`~wsss_edam.optim.edam_optim.warmup_poly_schedule`).
        sampler: default ``PairEpochSampler`` (the list's order, sharded across ranks).
        Other options: as :class:`~wsss_core.pipeline.train_classifier.TrainClassifier`.
    """

    def __init__(self, name: str, model: dict, passes: int = 1, pair_seed: Optional[int] = None,
                 sampler: Optional[dict] = None, warmup_steps: int = 2000, power: float = 0.9,
                 **options):
        if int(passes) < 1:
            raise ValueError(f'passes must be >= 1, got {passes}')
        super().__init__(name, model=model, sampler=sampler or dict(type='PairEpochSampler'),
                         passes=int(passes), pair_seed=pair_seed,
                         warmup_steps=int(warmup_steps), power=float(power), **options)

    def default_schedule(self, lr: float, total_steps: int) -> list:
        return warmup_poly_schedule(total_steps, self.options['warmup_steps'],
                                    self.options['power'])

    def pair_seed(self, ctx: StageContext) -> int:
        seed = self.options['pair_seed']
        if seed is None:
            seed = ctx.seed if ctx.seed is not None else 0
        return int(seed)

    def build_train_set(self, ctx: StageContext, data_cfg: dict) -> ImagePairs:
        """ImagePairs over TrainClassifier's training images; writes :data:`PAIR_LIST`."""
        images = super().build_train_set(ctx, data_cfg)
        self._pairs = ImagePairs(images, passes=self.options['passes'], seed=self.pair_seed(ctx))
        if get_dist_info()[0] == 0:
            with atomic_write(Path(ctx.stage_dir) / PAIR_LIST, 'w') as fh:
                fh.write(''.join(line + '\n' for line in self._pairs.pair_lines()))
        return self._pairs

    def dataloader(self, dataset, batch_size, shuffle, sampler=None, **kwargs) -> dict:
        """Pairs collated into one batch of ``2 batch_size`` images; validation sees
        ``2 batch_size`` single images per batch."""
        if not isinstance(dataset, ImagePairs):  # validation: single images
            return super().dataloader(dataset, 2 * batch_size, shuffle, sampler, **kwargs)
        cfg = super().dataloader(dataset, batch_size, shuffle, sampler, **kwargs)
        cfg['collate_fn'] = dict(type='collate_pairs')
        return cfg

    def run(self, ctx: StageContext) -> dict:
        record = super().run(ctx)
        pairs: ImagePairs = self._pairs
        record['counts'].update(train_images=len(pairs.dataset), train_pairs=len(pairs),
                                unpaired_images=len(pairs.unpaired))
        record['pairs'] = dict(count=len(pairs), passes=pairs.passes, seed=pairs.seed,
                               unpaired_images=len(pairs.unpaired), list=PAIR_LIST)
        return record
