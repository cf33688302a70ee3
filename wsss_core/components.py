"""Import every core component module so that it registers into the core registries."""
from __future__ import annotations

from .registry import METRICS


def register_core_components() -> None:
    """Idempotent: importing registers; re-importing is a no-op."""
    from . import cams, compat, datasets, refiners, saliency  # noqa: F401
    from .cams import gradient, pytorch_grad_cam_adapter, score_cam  # noqa: F401
    from .refiners import dense_crf, ir_labels, pamr  # noqa: F401
    from .datasets import (coco14, synthetic_dataset, synthetic_wsol, tagged_folder,  # noqa: F401
                           voc12, wsol_metadata)
    from .evaluation.wsol import metric as wsol_metric  # noqa: F401
    from .evaluation.classification import MultiLabelMAP
    from .models import (cam_classifier, data_preprocessor, irn, resnet38,  # noqa: F401
                         small_resnet, timm_backbone, torchvision_resnet)
    from .pipeline import exact_resume, loss_guard  # noqa: F401  (their hooks)
    from .pipeline import (evaluate_labels, evaluate_wsol, make_cams,  # noqa: F401
                           random_walk_labels, refine_labels, render_sheet, train_classifier,
                           train_irn)
    if METRICS.get('MultiLabelMAP') is None:
        METRICS.register_module(module=MultiLabelMAP)
