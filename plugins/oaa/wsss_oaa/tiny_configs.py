"""``oaa::synthetic.py`` made tiny, for tests and ``scripts/results_fingerprint.py``: the same
stages on 16 + 8 generated images of 48 px with small networks and one or two epochs, so that
the whole pipeline (baseline, OAA, IAM, proxy labels, both DeepLab runs) runs in about a
minute on a CPU while every stage still computes.  Only counts and sizes change."""
from __future__ import annotations

#: 16 training and 8 validation images of 48 px, 3 classes
TINY_GENERATOR = dict(image_size=48, num_classes=3, seed=0, num_train=16, num_val=8)
_SMALL = dict(type='SmallResNet', widths=(8, 8, 16, 16))


def shrink_synthetic(cfg):
    """Shrink a loaded ``oaa::synthetic.py`` in place (counts and sizes only); returns it."""
    from wsss_core.config import merge_options
    shrink = {'data.generator': dict(TINY_GENERATOR), 'data.progress': False}
    for name in ('classify', 'oaa_classify', 'oaa_iam', 'oaa_late_classify'):
        shrink.update({f'stages.{name}.max_epochs': 1 if name in ('classify', 'oaa_iam') else 2,
                       f'stages.{name}.batch_size': 8, f'stages.{name}.val_split': None,
                       f'stages.{name}.model.backbone': dict(_SMALL)})
    shrink['stages.oaa_late_classify.custom_hooks'] = [
        dict(type='OAAAccumulationHook', start_epoch=1)]
    for name in ('deeplab', 'oaa_deeplab'):   # the recipe's network replaced (_delete_)
        shrink.update({f'stages.{name}.max_iters': 2, f'stages.{name}.batch_size': 4,
                       f'stages.{name}.crop_size': 48, f'stages.{name}.model': dict(
                           _delete_=True, type='DeepLabV2', rates=(1, 2, 3, 4),
                           backbone=dict(_SMALL))})
    for name in ('test', 'oaa_test'):
        shrink[f'stages.{name}.workers'] = 0
    return merge_options(cfg, shrink)
