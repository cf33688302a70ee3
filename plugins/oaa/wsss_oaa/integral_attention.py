"""The integral attention model, OAA+ (Jiang et al., ICCV 2019, §3.3).

The accumulated attention maps of the OAA classifier become per-pixel soft targets of a
second network with the same backbone and head but no pooling.  With x the raw (B, C, h, w)
output and t in [0, 1] the targets (zero for the classes an image does not hold):

    P = {t > 1e-3},  N = the other positions            (over the whole batch)
    L = 1/|P| sum_P -t log sigma(x)  +  1/|N| sum_N -log(1 - sigma(x) + 1e-8)

each term skipped when its set is empty.  Its output, ReLU'd and max-normalised per class,
is the "integral attention map" that replaces the accumulated maps (the core's MakeCAMs with
the plain ``CAM`` generator does exactly that, since :meth:`cam_logits` is the raw output).

This module holds the loss (:func:`integral_attention_loss`) and the model
(:class:`IntegralAttentionModel`); the transform that loads the targets and the training
stage are in :mod:`wsss_oaa.stages.train_integral_attention`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from wsss_core.registry import MODELS

from .models.oaa_classifier import OAAClassifier

LOSS_FORMS = ('pytorch', 'caffe', 'nsrom')


# ----------------------------------------------------------------------------- loss
def integral_attention_loss(x: torch.Tensor, t: torch.Tensor, form: str = 'pytorch',
                            threshold: float = 1e-3) -> torch.Tensor:
    """The split positive / negative sigmoid loss of the integral attention model.

    ``form='pytorch'`` (OAA-PyTorch ``ExLoss``)::

        P = {t > threshold},  N = {t <= threshold}
        L = mean_P[ -t log sigma(x) ] + mean_N[ -log(1 - sigma(x) + 1e-8) ]

    ``form='caffe'`` (the original ``SigmoidSplitpnProbLossLayer``)::

        P = {t > 0},  N = {t == 0}
        L = mean_P[ t softplus(-x) ] + mean_N[ softplus(x) ]

    where softplus(x) = log(1 + e^x) = -log(1 - sigma(x)) and softplus(-x) = -log sigma(x),
    evaluated in their overflow-safe forms.

    ``form='nsrom'`` (NSROM's released loss; the sets of 'caffe')::

        P = {t > 0},  N = {t == 0}
        L = mean_P[ -t log sigma(x) ]
          + mean_N[ -log(exp(-max(x, 0)) + 1e-8) + log(1 + exp(-|x|)) ]

    The negative term is softplus(x) = max(x, 0) + log(1 + e^-|x|) with ``1e-8`` added
    inside the first logarithm: it saturates at -log(1e-8) = 18.42 with a vanishing gradient
    e^-x / (e^-x + 1e-8) for large x (about 0.03 below softplus at x = 15, gradient 0.968).

    ``threshold`` is used by the 'pytorch' form only.  In every form the positive term is computed as ``-t * logsigmoid(x)`` (equal to
    ``-t log sigma(x)`` wherever that is finite); the 'pytorch' negative term keeps the
    reference's ``+ 1e-8`` (which bounds it by -log(1e-8) = 18.42).  The means run over all
    positions of the batch together; a term whose set is empty is left out.

    Args:
        x: raw scores (B, C, h, w) (any shape, equal to ``t``'s).
        t: targets in [0, 1], same shape.
    """
    if form not in LOSS_FORMS:
        raise ValueError(f'form must be one of {LOSS_FORMS}, not {form!r}')
    if x.shape != t.shape:
        raise ValueError(f'scores {tuple(x.shape)} and targets {tuple(t.shape)} differ in shape')
    x, t = x.float(), t.float()
    if form == 'pytorch':
        pos = t > threshold
        neg = ~pos
        neg_loss = -torch.log(1.0 - torch.sigmoid(x) + 1e-8)
    elif form == 'nsrom':
        pos, neg = t > 0, t == 0
        neg_loss = (-torch.log(torch.exp(-x.clamp(min=0.0)) + 1e-8)
                    + torch.log1p(torch.exp(-x.abs())))
    else:
        pos, neg = t > 0, t == 0
        neg_loss = F.softplus(x)
    loss = x.sum() * 0.0  # keeps the graph (and the device) when both sets are empty
    if pos.any():
        loss = loss + (-t[pos] * F.logsigmoid(x[pos])).mean()
    if neg.any():
        loss = loss + neg_loss[neg].mean()
    return loss


# ----------------------------------------------------------------------------- model
@MODELS.register_module()
class IntegralAttentionModel(OAAClassifier):
    """The OAA+ network: :class:`OAAClassifier`'s backbone and head, trained per pixel.

    ``forward(img, labels, mode='loss', attention=...)`` takes the (B, C, h', w') targets of
    the batch (from :class:`LoadAttentionTargets`); targets of another size than the output
    are resized bilinearly to it (the reference asserts equal sizes: the same ``Resize`` in
    both trainings keeps them equal).  Returns ``{'loss_iam': loss_weight * L}``.  The other
    modes are the classifier's (logits = spatial mean of the output); :meth:`cam_logits` is
    the raw output, the integral attention map before ReLU and normalisation.

    Args:
        loss_form: 'pytorch' (OAA-PyTorch), 'caffe' (the original Caffe layer) or 'nsrom'
            (NSROM's released form), see :func:`integral_attention_loss`.
        threshold: positive-target threshold of the 'pytorch' form (1e-3).
        loss_weight: multiplies the loss.  The reference does **not** divide the IAM loss
            by its ``iter_size`` 5 (it does for the classifier), so each update sums five
            per-image losses; with mmengine's ``accumulative_counts=5`` (which divides by 5)
            ``loss_weight=5`` reproduces it.
        backbone, num_classes, head_channels, head_convs, init_std, data_preprocessor,
        channels_last: as :class:`OAAClassifier`.
    """

    def __init__(self, backbone: dict, num_classes: int, loss_form: str = 'pytorch',
                 threshold: float = 1e-3, loss_weight: float = 1.0, **kwargs):
        if loss_form not in LOSS_FORMS:
            raise ValueError(f'loss_form must be one of {LOSS_FORMS}, not {loss_form!r}')
        super().__init__(backbone=backbone, num_classes=num_classes, **kwargs)
        self.loss_form = loss_form
        self.threshold = float(threshold)
        self.loss_weight = float(loss_weight)

    def forward(self, img: torch.Tensor, labels: Optional[torch.Tensor] = None,
                mode: str = 'tensor', attention: Optional[torch.Tensor] = None, **kwargs):
        if mode != 'loss':
            return super().forward(img, labels, mode)
        if kwargs.get('drop_mask') is not None:
            raise ValueError('IntegralAttentionModel does not take a drop_mask: attention drop '
                             'belongs to the OAA classifier, not to OAA+')
        if attention is None:
            raise ValueError("IntegralAttentionModel needs the 'attention' targets in the batch "
                             '(LoadAttentionTargets + PackInputs keys with attention)')
        out = self.cam_logits(img)
        target = self.match_target(attention, out)
        loss = integral_attention_loss(out, target, self.loss_form, self.threshold)
        return {'loss_iam': self.loss_weight * loss}

    @staticmethod
    def match_target(target: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``target`` as float on ``out``'s device, bilinearly resized to ``out``'s size."""
        target = target.to(device=out.device, dtype=torch.float32)
        if target.shape[:2] != out.shape[:2]:
            raise ValueError(f'attention targets are {tuple(target.shape)}, the output '
                             f'{tuple(out.shape)}: batch and class counts must match')
        if target.shape[-2:] != out.shape[-2:]:
            target = F.interpolate(target, size=out.shape[-2:], mode='bilinear',
                                   align_corners=False)
        return target
