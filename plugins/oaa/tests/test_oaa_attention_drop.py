"""Attention drop (OAA-drop): the per-image draw, the mask from the latest accepted maps,
its independence of batch order, and the hook wiring (current maps, ``drop_mask``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wsss_core.models.step_maps import TrainStepOutputs
from wsss_oaa.attention_drop import (batch_drop_mask, drop_config, drop_decision,
                                     drop_region)
from wsss_oaa.testing import registered  # noqa: F401  (fixture)

TOP_LEFT = np.array([[255, 0], [0, 0]], dtype=np.uint8)
BOTTOM_RIGHT = TOP_LEFT[::-1, ::-1].copy()


class FakeModel:
    step_map_keys = ('cam', 'logits')

    def parse_losses(self, losses):  # pragma: no cover
        raise NotImplementedError

    def forward(self, img, labels=None, mode='tensor', drop_mask=None):  # pragma: no cover
        raise NotImplementedError


def fake_runner(max_epochs):
    from types import SimpleNamespace
    return SimpleNamespace(model=FakeModel(), epoch=0, max_epochs=max_epochs, seed=0)


def train_step(hook, runner, epoch, img_ids, labels, cam, logits, size=(8, 8)):
    """before_train_iter -> (the model records its step) -> after_train_iter."""
    runner.epoch = epoch
    batch = dict(img_id=list(img_ids), labels=torch.as_tensor(labels, dtype=torch.float32),
                 img=torch.zeros(len(img_ids), 3, *size, dtype=torch.uint8))
    hook.before_train_iter(runner, 0, batch)
    outputs = TrainStepOutputs({}, dict(cam=torch.as_tensor(cam), logits=torch.as_tensor(logits)))
    hook.after_train_iter(runner, 0, batch, outputs)
    return batch


def test_drop_config_defaults_are_the_reference_values():
    assert drop_config(None) is None and drop_config(False) is None
    assert drop_config(True) == dict(prob=0.5, threshold=0.6)
    assert drop_config(dict(threshold=0.8)) == dict(prob=0.5, threshold=0.8)
    with pytest.raises(ValueError, match='prob'):
        drop_config(dict(prob=1.5))


def test_drop_decision_is_deterministic_per_seed_epoch_and_image_and_has_rate_prob():
    ids = [f'2007_{i:06d}' for i in range(2000)]
    draws = [drop_decision(x, 3, 0.5, seed=7) for x in ids]
    assert draws == [drop_decision(x, 3, 0.5, seed=7) for x in ids]      # reproducible
    assert 0.46 < np.mean(draws) < 0.54
    assert draws != [drop_decision(x, 4, 0.5, seed=7) for x in ids]      # new epoch, new draw
    assert draws != [drop_decision(x, 3, 0.5, seed=8) for x in ids]
    assert 0.17 < np.mean([drop_decision(x, 3, 0.2) for x in ids]) < 0.23
    assert not any(drop_decision(x, 3, 0.0) for x in ids[:50])
    assert all(drop_decision(x, 3, 1.0) for x in ids[:50])


def test_drop_region_is_the_union_of_bilinearly_upsampled_maps_over_the_threshold():
    # 2x2 -> 4x4, align_corners=False: weights along an axis from the first cell are
    # 1, 0.75, 0.25, 0; a pixel is dropped where the product exceeds 0.6
    region = drop_region([TOP_LEFT], (4, 4), 0.6)
    expected = np.zeros((4, 4), bool)
    expected[0, 0] = expected[0, 1] = expected[1, 0] = True                  # 1, .75, .75
    assert np.array_equal(region.numpy(), expected)                          # (1,1): .5625
    both = drop_region([TOP_LEFT, BOTTOM_RIGHT], (4, 4), 0.6)
    assert np.array_equal(both.numpy(), expected | expected[::-1, ::-1])
    lower = drop_region([TOP_LEFT], (4, 4), 0.5)
    assert lower[1, 1] and lower.sum() == 4
    assert not drop_region([], (4, 4), 0.6).any()


def test_batch_mask_uses_the_gt_classes_current_maps_of_dropped_images_only():
    current = {('a', 0): TOP_LEFT, ('a', 2): BOTTOM_RIGHT, ('b', 1): TOP_LEFT}
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    ids = ['a', 'b', 'c']                     # a: class 2 not GT; b: no map of class 2; c: none
    mask = batch_drop_mask(ids, labels, current.get, (4, 4), epoch=1, prob=1.0, threshold=0.6)
    assert mask.shape == (3, 1, 4, 4) and mask.dtype == torch.float32
    assert torch.equal(mask[0, 0], drop_region([TOP_LEFT], (4, 4), 0.6).float())
    assert mask[1:].sum() == 0
    never = batch_drop_mask(ids, labels, current.get, (4, 4), epoch=1, prob=0.0, threshold=0.6)
    assert never.sum() == 0


def test_batch_mask_of_an_image_does_not_depend_on_its_batch():
    ids = [f'x{i}' for i in range(12)]
    current = {(x, 0): TOP_LEFT for x in ids}
    labels = torch.zeros(12, 2)
    labels[:, 0] = 1
    mask = batch_drop_mask(ids, labels, current.get, (4, 4), 2, 0.5, 0.6, seed=1)
    assert 0 < int((mask.flatten(1).sum(1) > 0).sum()) < 12                 # some, not all
    perm = [5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6]
    shuffled = batch_drop_mask([ids[i] for i in perm], labels[perm], current.get, (4, 4), 2,
                               0.5, 0.6, seed=1)
    assert torch.equal(shuffled, mask[perm])


def test_hook_adds_drop_masks_from_the_latest_accepted_maps_not_from_fills():
    from wsss_oaa.accumulation import OAAAccumulationHook
    hook, runner = OAAAccumulationHook(drop=dict(prob=1.0, threshold=0.6)), fake_runner(3)
    cam = torch.tensor([[[[4.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]])
    first = train_step(hook, runner, 1, ['a'], [[1.0, 0.0]], cam, [[1.0, 0.0]], size=(4, 4))
    assert first['drop_mask'].sum() == 0                        # nothing accepted yet
    assert hook.store.current_map(('a', 0)).tolist() == [[255, 0], [0, 0]]
    second = train_step(hook, runner, 2, ['a'], [[1.0, 0.0]], cam, [[1.0, 0.0]], size=(4, 4))
    assert torch.equal(second['drop_mask'][0, 0], drop_region([TOP_LEFT], (4, 4), 0.6).float())
    # a last-epoch fill (class 1 of 'b', rejected by the top-1 filter) writes no current map
    train_step(hook, runner, 2, ['b'], [[0.0, 1.0]], cam, [[1.0, 0.0]], size=(4, 4))
    assert ('b', 1) in hook.store and hook.store.current_map(('b', 1)) is None
    plain = OAAAccumulationHook()
    batch = train_step(plain, runner, 1, ['a'], [[1.0, 0.0]], cam, [[1.0, 0.0]])
    assert 'drop_mask' not in batch and not plain.store.current


def test_hook_with_drop_refuses_a_model_without_drop_mask():
    from types import SimpleNamespace
    from wsss_oaa.accumulation import OAAAccumulationHook

    class NoDrop(FakeModel):
        def forward(self, img, labels=None, mode='tensor'):  # pragma: no cover
            return img

    with pytest.raises(TypeError, match='drop_mask'):
        OAAAccumulationHook(drop=True).before_train(SimpleNamespace(model=NoDrop(), max_epochs=4))


def test_oaa_classifier_zeroes_the_dropped_input_pixels(registered):  # noqa: F811
    from wsss_oaa.testing import tiny_oaa_classifier
    model = tiny_oaa_classifier().train()
    img = torch.randint(0, 256, (2, 3, 48, 48), dtype=torch.uint8)
    mask = torch.zeros(2, 1, 48, 48)
    mask[0, :, :24] = 1
    data = model.data_preprocessor(dict(img=img, labels=torch.ones(2, 3), drop_mask=mask), True)
    dropped = model.apply_drop_mask(data['img'], data['drop_mask'])
    assert torch.equal(dropped[0, :, :24], torch.zeros(3, 24, 48))
    assert torch.equal(dropped[1], data['img'][1]) and torch.equal(dropped[0, :, 24:],
                                                                   data['img'][0, :, 24:])



# ---------------------------------------------------------------- reference rounding (8 bit)
# A 1 x 2 map [154, 151] resized to 1 x 4 with half-pixel centres has the weights
# (1, 0), (.75, .25), (.25, .75), (0, 1): the columns are 154, 153.25, 151.75, 151.
# Column 1 at 153.25: the float path drops it (153.25 / 255 = 0.60098 > 0.6); OpenCV's uint8
# resize rounds it to 153, and 153 / 255 = 0.6 is not > 0.6, so the reference keeps it.
EDGE = np.array([[154, 151]], dtype=np.uint8)


def test_float_resize_drops_a_pixel_interpolating_to_153_25():
    assert drop_region([EDGE], (1, 4), 0.6).tolist() == [[True, True, False, False]]


def test_reference_rounding_keeps_the_pixel_that_rounds_to_153():
    region = drop_region([EDGE], (1, 4), 0.6, reference_rounding=True)
    assert region.tolist() == [[True, False, False, False]]
    # [154, 153] -> 154, 153.75 (-> 154, dropped), 153.25 (-> 153, kept), 153 (kept)
    above = np.array([[154, 153]], dtype=np.uint8)
    assert drop_region([above], (1, 4), 0.6, reference_rounding=True).tolist() == \
        [[True, True, False, False]]
    assert drop_region([above], (1, 4), 0.6).tolist() == [[True, True, True, False]]
    # exactly 153 everywhere: 153 / 255 = 0.6 is never > 0.6
    flat = np.full((2, 2), 153, dtype=np.uint8)
    assert not drop_region([flat], (4, 4), 0.6, reference_rounding=True).any()
    with pytest.raises(TypeError, match='uint8'):
        drop_region([EDGE.astype(np.float32)], (1, 4), 0.6, reference_rounding=True)


def test_hook_with_a_quantised_store_resizes_as_the_reference():
    from wsss_oaa.accumulation import OAAAccumulationHook
    hook = OAAAccumulationHook(drop=dict(prob=1.0, threshold=0.6), quantize=True)
    runner = fake_runner(3)
    hook.store.current[('a', 0)] = EDGE
    batch = train_step(hook, runner, 1, ['a'], [[1.0, 0.0]], torch.zeros(1, 2, 1, 2),
                       [[1.0, 0.0]], size=(1, 4))
    assert batch['drop_mask'][0, 0].tolist() == [[1.0, 0.0, 0.0, 0.0]]
    float_hook = OAAAccumulationHook(drop=dict(prob=1.0, threshold=0.6))
    float_hook.store.current[('a', 0)] = EDGE
    batch = train_step(float_hook, fake_runner(3), 1, ['a'], [[1.0, 0.0]],
                       torch.zeros(1, 2, 1, 2), [[1.0, 0.0]], size=(1, 4))
    assert batch['drop_mask'][0, 0].tolist() == [[1.0, 1.0, 0.0, 0.0]]
