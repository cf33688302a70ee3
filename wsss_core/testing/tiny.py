"""Tiny data and pipeline configs for plumbing tests (ours and third-party plugins').

Small enough to run in seconds on one CPU thread; no accuracy is to be asserted on them.
"""
from __future__ import annotations

#: SyntheticShapes generator options: 48 px, 3 classes, 16 train / 8 val images
TINY_GENERATOR = dict(image_size=48, num_classes=3, seed=0, num_train=16, num_val=8)


def tiny_data_cfg() -> dict:
    """The ``data`` dict of a run on tiny SyntheticShapes (no progress bars)."""
    return dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False)


def tiny_classify_stage(name: str = 'classify', **options) -> dict:
    """A TrainClassifier stage on a tiny SmallResNet CAMClassifier (1 epoch, batch 8);
    ``options`` override or add stage options (e.g. ``val_split=None``)."""
    stage = dict(type='TrainClassifier', name=name, max_epochs=1, batch_size=8, log_interval=1,
                 model=dict(type='CAMClassifier',
                            backbone=dict(type='SmallResNet', widths=(8, 8, 16, 16))))
    stage.update(options)
    return stage


def tiny_pipeline_cfg(data_cfg: dict, epochs: int = 1) -> dict:
    """classify -> cams -> labels -> eval with a tiny SmallResNet."""
    return dict(
        seed=0, data=data_cfg,
        stages=[
            tiny_classify_stage(max_epochs=epochs),
            dict(type='MakeCAMs', name='cams', source='classify', split='train',
                 scales=(1.0, 0.5), flip=True, batch_size=4),
            dict(type='RefineLabels', name='labels', cams='cams'),
            dict(type='EvaluateLabels', name='eval_labels', labels='labels'),
        ])
