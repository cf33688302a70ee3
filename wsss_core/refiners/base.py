"""Label refiner base: one step of turning CAMs into a pseudo label.

A refiner takes the sample dict of one image (``img_id``, ``cams`` (K, H, W) normalised,
``class_ids`` (K,) 0-based foreground ids, and, when it declares them in ``needs``,
``img`` (H, W, 3) uint8 and ``saliency`` (H, W) uint8) and returns it with ``label``
(H, W) uint8 set (0 = background, 1..C, 255 = ignore).  The first refiner of a chain makes
the label from the CAMs; later ones may read and improve ``label`` (e.g. a CRF).
With ``RefineLabels(extra_cams={key: stage})`` the sample also holds ``key`` (that stage's
maps, (K', H, W)) and ``key + '_class_ids'``.
"""
from __future__ import annotations


class LabelRefiner:
    """Subclasses implement :meth:`refine`; ``needs`` lists the extra sample keys they read."""

    needs: tuple = ()

    def refine(self, sample: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, sample: dict) -> dict:
        missing = [k for k in self.needs if sample.get(k) is None]
        if missing:
            raise KeyError(f'{type(self).__name__} needs {missing} for image '
                           f"{sample.get('img_id')}, but the dataset does not provide it")
        return self.refine(sample)
