"""TrainGETAM: GETAM's end-to-end training as a core training stage.

``TrainClassifier``'s mmengine Runner with GETAM's recipe (``docs/methods/getam.md`` §2.7):

* data: each image's long side resized to a random integer in [230, 292] (bilinear), flipped
  with p 0.5, randomly cropped to 256 x 256 with mean-colour padding; the saliency map moves
  with it (padding 0) and ``valid`` marks the crop's image pixels (the dense-CRF loss's ROI);
* one SGD parameter group, lr 0.04, and :class:`~wsss_getam.hooks.GETAMScheduleHook`: the
  classification phase for the first half of the iterations, then the joint phase at a tenth
  of the poly-0.9 lr (no other scheduler);
* batch 4, 20 epochs.

The optimiser: the reference hands ``(params, lr, weight_decay)`` positionally to
``torch.optim.SGD``, so its weight decay 5e-4 lands in the momentum slot: it trains with
momentum 5e-4 and no weight decay.  Default here: the intended SGD (momentum 0, weight decay
5e-4); ``reference_optimizer=True`` reproduces the quirk.  The model (``GETAMNet``) records
``model``/``weights`` in the manifest like TrainClassifier, so ``TestSegmentor`` loads it.
"""
from __future__ import annotations

from typing import Optional, Sequence

from wsss_core.pipeline.stage import StageContext, StageError
from wsss_core.pipeline.train_classifier import TrainClassifier
from wsss_core.registry import STAGES
from wsss_core.pipeline.recipe_fragments import RECIPE_FRAGMENT_HINT

from .. import crf_preset  # noqa: F401  (registers the dense-CRF preset 'getam')

__all__ = ['TrainGETAM', 'getam_train_pipeline', 'getam_optim_wrapper']


def getam_train_pipeline(crop: int = 256, long_side: Sequence[int] = (230, 292)) -> list:
    """The reference's augmentation (``docs/methods/getam.md`` §2.7), saliency and ROI moved with
    the image."""
    return [dict(type='MarkValidPixels'),
            dict(type='RandomLongSide', low=int(long_side[0]), high=int(long_side[1]),
                 interpolation='bilinear'),
            dict(type='RandomHorizontalFlip'),
            dict(type='RandomPadCrop', size=int(crop), img_pad_mode='mean'),
            dict(type='PackInputs', keys=('img', 'labels', 'saliency', 'valid'))]


def getam_optim_wrapper(lr: float = 0.04, weight_decay: float = 5e-4, momentum: float = 0.0,
                        reference_optimizer: bool = False) -> dict:
    """One-group SGD; ``reference_optimizer``: momentum = ``weight_decay``, no weight decay."""
    if reference_optimizer:
        momentum, weight_decay = weight_decay, 0.0
    return dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=float(lr),
                                                    momentum=float(momentum),
                                                    weight_decay=float(weight_decay)))


@STAGES.register_module()
class TrainGETAM(TrainClassifier):
    """Train a ``GETAMNet`` end to end in GETAM's two phases; see the module docstring.

    Args:
        model: the ``GETAMNet`` config (``num_classes`` defaults to the data set's).
        crop, long_side: the augmentation (256, (230, 292)); ``pipeline`` replaces it.
        lr, weight_decay, momentum, reference_optimizer: the optimiser (see above);
            ``optim_wrapper`` replaces it.
        cls_fraction, seg_lr_scale, power: the schedule hook's (0.5, 0.1, 0.9).
        Other options: as :class:`~wsss_core.pipeline.train_classifier.TrainClassifier`
        (``max_epochs`` 20, ``batch_size`` 4, ``val_split`` None by default here).

    Under DDP the classification phase leaves the decoder and the segmentation head without
    gradient, so DDP looks for unused parameters (the reference's
    ``find_unused_parameters=True``; the stage option of that name overrides it).
    """

    find_unused_parameters = True

    #: options it no longer takes, with the way forward (the refusal's hint)
    retired_options = {'recipe': RECIPE_FRAGMENT_HINT}

    def __init__(self, name: str, model: dict, max_epochs: int = 20, batch_size: int = 4,
                 crop: int = 256, long_side: Sequence[int] = (230, 292), lr: float = 0.04,
                 weight_decay: float = 5e-4, momentum: float = 0.0,
                 reference_optimizer: bool = False, cls_fraction: float = 0.5,
                 seg_lr_scale: float = 0.1, power: float = 0.9,
                 val_split: Optional[str] = None, optim_wrapper: Optional[dict] = None,
                 custom_hooks: Sequence = (), **options):
        if model.get('type', 'GETAMNet') != 'GETAMNet':
            raise StageError(f"[{name}] TrainGETAM trains a GETAMNet, not {model.get('type')!r}")
        if int(crop) % 32:
            raise StageError(f'[{name}] crop must be a multiple of 32 (GETAMNet), got {crop}')
        schedule = dict(type='GETAMScheduleHook', cls_fraction=float(cls_fraction),
                        seg_lr_scale=float(seg_lr_scale), power=float(power))
        optim = optim_wrapper or getam_optim_wrapper(lr, weight_decay, momentum,
                                                     reference_optimizer)
        super().__init__(name, model=model, max_epochs=max_epochs, batch_size=batch_size,
                         val_split=val_split, optim_wrapper=optim,
                         custom_hooks=[schedule, *custom_hooks], crop=int(crop),
                         long_side=[int(v) for v in long_side],
                         reference_optimizer=bool(reference_optimizer), **options)

    def train_pipeline(self, ctx: StageContext) -> list:
        return list(self.options['pipeline'] or
                    getam_train_pipeline(self.options['crop'], self.options['long_side']))

    def build_train_set(self, ctx: StageContext, data_cfg: dict):
        dataset = super().build_train_set(ctx, data_cfg)
        records = getattr(dataset, 'records', [])
        missing = [r.img_id for r in records if getattr(r, 'saliency_path', None) is None]
        if missing:
            raise StageError(f"[{self.name}] GETAM's joint phase needs a saliency map per "
                             f'training image; {len(missing)} have none (e.g. {missing[0]}): '
                             "set the data set's saliency_dir")
        return dataset

    def default_schedule(self, lr: float, total_steps: int) -> list:
        """None: :class:`~wsss_getam.hooks.GETAMScheduleHook` sets the lr every iteration."""
        return []
