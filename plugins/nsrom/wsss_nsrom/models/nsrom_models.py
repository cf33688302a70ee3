"""NSROM's networks: OAA's classifier and integral model with a GloRe head.

Both put a :class:`~.glore.GloReUnit` between the 3x3 convs and the 1x1 classifier, but
the two reference files differ in where the ReLUs sit and in the init:

* classifier (``vgg.py``, :class:`NSROMClassifier`), the CAM A of the class maps::

      A = conv1x1( ReLU( GloRe( conv3x3(ReLU(conv3x3(ReLU(conv3x3(f))))) ) ) )
      s_c = mean_{x,y} A_c(x, y),   multilabel soft-margin loss (as OAA)

  He init N(0, sqrt(2 / (k k C_out))) for every Conv2d of the head (GloRe's 1x1 convs
  included), biases 0, BN scale 1 / shift 0; the GCN's Conv1d keep PyTorch's default.

* OA-CAM integral model (``vgg1.py``, :class:`OACAMModel`)::

      A = conv1x1( GloRe( ReLU(conv3x3(ReLU(conv3x3(ReLU(conv3x3(f)))))) ) )

  PyTorch's default init everywhere (the reference never calls its init), trained on the
  accumulated maps with NSROM's form of the integral attention loss (P = {t > 0},
  N = {t == 0}; ``loss_form='nsrom'``, see
  :func:`~wsss_oaa.integral_attention.integral_attention_loss`)::

      L = mean_P[ -t log sigma(x) ]
        + mean_N[ -log(exp(-max(x, 0)) + 1e-8) + log(1 + exp(-|x|)) ]

  The ``1e-8`` makes the negative term saturate at 18.42 for large x: it is not softplus.

Both work with any registered backbone and keep the behaviour of
:class:`~wsss_oaa.models.oaa_classifier.OAAClassifier` (the step maps, ``drop_mask``,
``cam_logits``, lr groups by the ``backbone.`` prefix, so the whole head, GloRe and its BN
included, is in the x10 / x20 groups).  The He init touches the head only: a backbone
keeps its own init / pretrained weights (the reference He-initialises the backbone too,
then overwrites it with ImageNet weights).
"""
from __future__ import annotations

from typing import Optional

import torch.nn as nn

from wsss_core.registry import MODELS
from wsss_oaa.integral_attention import IntegralAttentionModel
from wsss_oaa.models.oaa_classifier import OAAClassifier

from .glore import GloReUnit

__all__ = ['GloReAttentionHead', 'he_init_', 'NSROMClassifier', 'OACAMModel',
           'CLASSIFIER_HEAD', 'OACAM_HEAD']

HEAD_INITS = ('he', 'default')

#: layout and init of the classifier's head (``vgg.py``)
CLASSIFIER_HEAD = dict(relu_after_last_conv=False, relu_before_classifier=True, init='he')
#: layout and init of the OA-CAM head (``vgg1.py``)
OACAM_HEAD = dict(relu_after_last_conv=True, relu_before_classifier=False, init='default')


def he_init_(module: nn.Module) -> None:
    """He init of every Conv2d in ``module``: N(0, sqrt(2 / (k_h k_w C_out))), bias 0;
    BatchNorm scale 1, shift 0.  Other layers (the GCN's Conv1d) are left as they are."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class GloReAttentionHead(nn.Sequential):
    """``num_convs`` 3x3 convs -> GloRe -> [ReLU] -> 1x1 conv to the classes (with bias).

    Args:
        in_channels: backbone channels.
        num_classes: C.
        channels: width of the 3x3 convs and of the GloRe unit (512).
        num_convs: number of 3x3 convs (3), each followed by ReLU except, when
            ``relu_after_last_conv`` is False, the last one.
        relu_before_classifier: a ReLU between GloRe and the 1x1 conv.
        num_nodes: GloRe's N (its S is 2 N).
        init: ``'he'`` (:func:`he_init_`) or ``'default'`` (PyTorch's).
        zero_init_residual: passed to :class:`GloReUnit` (applied after the init).
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int = 512,
                 num_convs: int = 3, relu_after_last_conv: bool = False,
                 relu_before_classifier: bool = True, num_nodes: int = 64,
                 init: str = 'he', zero_init_residual: bool = False):
        if init not in HEAD_INITS:
            raise ValueError(f'init must be one of {HEAD_INITS}, not {init!r}')
        if num_convs < 1:
            raise ValueError(f'num_convs must be at least 1, not {num_convs}')
        layers, cin = [], in_channels
        for i in range(num_convs):
            layers.append(nn.Conv2d(cin, channels, 3, padding=1))
            if i < num_convs - 1 or relu_after_last_conv:
                layers.append(nn.ReLU(inplace=True))
            cin = channels
        glore = GloReUnit(channels, num_nodes, zero_init_residual=zero_init_residual)
        layers.append(glore)
        if relu_before_classifier:
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(channels, num_classes, 1))
        super().__init__(*layers)
        if init == 'he':
            he_init_(self)
            glore.reset_residual()

    @property
    def glore(self) -> GloReUnit:
        return next(m for m in self if isinstance(m, GloReUnit))


def _head_args(preset: dict, head_channels: int, head_convs: int, num_nodes: int,
               init: str) -> dict:
    """``preset`` completed with the sizes and the init (the head's keyword arguments)."""
    return dict(preset, channels=int(head_channels), num_convs=int(head_convs),
                num_nodes=int(num_nodes), init=init)


@MODELS.register_module()
class NSROMClassifier(OAAClassifier):
    """OAA's classifier with NSROM's GloRe head (:data:`CLASSIFIER_HEAD`),
    ``docs/methods/nsrom.md#32-classifier-with-the-glore-head``.

    Args:
        backbone, num_classes, data_preprocessor, channels_last: as :class:`OAAClassifier`.
        head_channels / head_convs: width and number of the head's 3x3 convs (512 / 3).
        num_nodes: GloRe's node count N (64).
        init: ``'he'`` (reference) or ``'default'``.
    """

    def __init__(self, backbone: dict, num_classes: int, head_channels: int = 512,
                 head_convs: int = 3, num_nodes: int = 64, init: str = 'he',
                 data_preprocessor: Optional[dict] = None, channels_last: bool = False,
                 init_cfg=None):
        self._nsrom_head_args = _head_args(CLASSIFIER_HEAD, head_channels, head_convs,
                                           num_nodes, init)
        super().__init__(backbone=backbone, num_classes=num_classes,
                         head_channels=head_channels, head_convs=head_convs,
                         data_preprocessor=data_preprocessor, channels_last=channels_last,
                         init_cfg=init_cfg)

    def build_classifier(self, in_channels: int, num_classes: int) -> nn.Module:
        return GloReAttentionHead(in_channels, num_classes, **self._nsrom_head_args)


@MODELS.register_module()
class OACAMModel(IntegralAttentionModel):
    """NSROM's integral model producing the OA-CAM (:data:`OACAM_HEAD`),
    ``docs/methods/nsrom.md#34-oa-cam-integral-model``.

    ``forward(img, labels, mode='loss', attention=...)`` returns ``{'loss_iam'}`` as
    :class:`IntegralAttentionModel`, with ``loss_form='nsrom'`` (NSROM's released loss) by
    default.

    Args:
        loss_form / threshold / loss_weight: as :class:`IntegralAttentionModel`
            (``threshold`` only matters for ``loss_form='pytorch'``).
        head_channels / head_convs / num_nodes: as :class:`NSROMClassifier`.
        init: ``'default'`` (reference: PyTorch's init) or ``'he'``.
        backbone, num_classes, data_preprocessor, channels_last: as :class:`OAAClassifier`.
    """

    def __init__(self, backbone: dict, num_classes: int, loss_form: str = 'nsrom',
                 threshold: float = 1e-3, loss_weight: float = 1.0, head_channels: int = 512,
                 head_convs: int = 3, num_nodes: int = 64, init: str = 'default',
                 data_preprocessor: Optional[dict] = None, channels_last: bool = False,
                 init_cfg=None):
        self._nsrom_head_args = _head_args(OACAM_HEAD, head_channels, head_convs,
                                           num_nodes, init)
        super().__init__(backbone=backbone, num_classes=num_classes, loss_form=loss_form,
                         threshold=threshold, loss_weight=loss_weight,
                         head_channels=head_channels, head_convs=head_convs,
                         data_preprocessor=data_preprocessor, channels_last=channels_last,
                         init_cfg=init_cfg)

    def build_classifier(self, in_channels: int, num_classes: int) -> nn.Module:
        return GloReAttentionHead(in_channels, num_classes, **self._nsrom_head_args)
