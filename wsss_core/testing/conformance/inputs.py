"""Tiny generated inputs for the conformance checks (CPU, a few thousand pixels).

Every factory takes a seeded ``torch.Generator`` so that two runs under one seed see the same
inputs: the determinism check compares outputs, not inputs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

#: default spatial size of generated images (H, W): not square, to catch swapped axes
IMAGE_HW = (24, 32)


def image_batch(gen: torch.Generator, batch: int = 2, hw=(32, 32)) -> torch.Tensor:
    """A normalised float image batch ``(B, 3, H, W)`` (zero mean, unit variance noise)."""
    return torch.randn(batch, 3, *hw, generator=gen)


def multilabel_targets(gen: torch.Generator, batch: int, num_classes: int) -> torch.Tensor:
    """``(B, C)`` 0/1 image-level labels with at least one class per image."""
    labels = (torch.rand(batch, num_classes, generator=gen) < 0.4).float()
    first = torch.randint(num_classes, (batch,), generator=gen)
    labels[torch.arange(batch), first] = 1.0
    return labels


def uint8_image(gen: torch.Generator, hw=IMAGE_HW) -> np.ndarray:
    """An RGB uint8 image ``(H, W, 3)`` with a bright square on noise (something salient)."""
    img = torch.randint(0, 96, (*hw, 3), generator=gen, dtype=torch.uint8).numpy()
    h, w = hw
    img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] += 128
    return img


def class_ids_per_image(gen: torch.Generator, batch: int, num_classes: int) -> list:
    """One sorted non-empty list of 0-based class ids per image."""
    labels = multilabel_targets(gen, batch, num_classes)
    return [torch.nonzero(row).flatten().tolist() for row in labels]


def tiny_cam_classifier(num_classes: int = 3):
    """A core CAMClassifier over a 4-8 channel SmallResNet (what CAM generators run on)."""
    from ...registry import MODELS, build
    return build(dict(type='CAMClassifier', num_classes=num_classes,
                      backbone=dict(type='SmallResNet', widths=(4, 4, 8, 8))), MODELS)


def classifier_inputs(gen: torch.Generator, num_classes: int, batch: int = 2,
                      hw=(32, 32)) -> dict:
    """``dict(img, labels)`` for a ``classifier`` example."""
    return dict(img=image_batch(gen, batch, hw), labels=multilabel_targets(gen, batch,
                                                                           num_classes))


def cam_generator_inputs(gen: torch.Generator, num_classes: int, batch: int = 2,
                         hw=(32, 32)) -> dict:
    """``dict(model, img, class_ids)`` with the tiny core CAMClassifier."""
    return dict(model=tiny_cam_classifier(num_classes), img=image_batch(gen, batch, hw),
                class_ids=class_ids_per_image(gen, batch, num_classes))


def refiner_sample(gen: torch.Generator, num_classes: int, hw=IMAGE_HW,
                   class_ids: Sequence[int] = None) -> dict:
    """The sample dict a label refiner gets: normalised CAMs of the image's classes, the
    image, a saliency map, the image-level label vector."""
    if class_ids is None:
        class_ids = class_ids_per_image(gen, 1, num_classes)[0]
    cams = torch.rand(len(class_ids), *hw, generator=gen).numpy().astype(np.float32)
    img = uint8_image(gen, hw)
    saliency = (img.mean(axis=2) > 96).astype(np.uint8) * 255
    labels = np.zeros(num_classes, np.float32)
    labels[list(class_ids)] = 1
    return dict(img_id='conformance_0', cams=cams, class_ids=np.asarray(class_ids, np.int64),
                img=img, saliency=saliency, labels=labels)


def transform_sample(gen: torch.Generator, num_classes: int, hw=IMAGE_HW) -> dict:
    """A dataset sample before packing: uint8 image, ground truth, saliency, labels."""
    img = uint8_image(gen, hw)
    gt = np.zeros(hw, np.uint8)
    gt[hw[0] // 4: 3 * hw[0] // 4, hw[1] // 4: 3 * hw[1] // 4] = 1
    labels = np.zeros(num_classes, np.float32)
    labels[0] = 1
    return dict(img_id='conformance_0', img=img, gt_seg=gt, labels=labels,
                saliency=(gt * 255).astype(np.uint8))
