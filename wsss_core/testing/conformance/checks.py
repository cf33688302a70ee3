"""The checks of each component kind: exercise a built component on tiny inputs and assert
the kind's output contract (shapes, value ranges, finiteness, gradients).

Each ``exercise_<kind>(obj, inputs, example)`` raises :class:`ConformanceFailure` with a
message saying what was expected and what came out, and returns the outputs the
determinism check compares between two runs under one seed.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Dict, List

import numpy as np
import torch

from ...datasets.transforms import PIXEL_MAPS
from ...io import IGNORE_INDEX
from . import inputs as default_inputs


class ConformanceFailure(AssertionError):
    """A component broke its kind's contract; the message says how."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceFailure(message)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a generator for the input factories."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def default_inputs_for(kind: str, num_classes: int) -> Callable[[torch.Generator], Any]:
    """The input factory a kind uses when the example declares none."""
    return {
        'classifier': lambda g: default_inputs.classifier_inputs(g, num_classes),
        'cam_generator': lambda g: default_inputs.cam_generator_inputs(g, num_classes),
        'label_refiner': lambda g: default_inputs.refiner_sample(g, num_classes),
        'saliency_source': lambda g: default_inputs.refiner_sample(g, num_classes),
        'transform': lambda g: default_inputs.transform_sample(g, num_classes),
        'module': lambda g: (default_inputs.image_batch(g),),
    }.get(kind, lambda g: None)


# ----------------------------------------------------------------------------- helpers
def _call(obj, args):
    if isinstance(args, dict):
        return obj(**args)
    if isinstance(args, (tuple, list)):
        return obj(*args)
    return obj(args)


def float_tensors(value) -> List[torch.Tensor]:
    """Every floating-point tensor in a (nested) output, in a stable order."""
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, dict):
        return [t for k in sorted(value, key=str) for t in float_tensors(value[k])]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in float_tensors(v)]
    return []


def _check_finite(tensors, what: str) -> None:
    for i, t in enumerate(tensors):
        expect(bool(torch.isfinite(t).all()), f'{what} #{i} (shape {tuple(t.shape)}) has '
               f'{int((~torch.isfinite(t)).sum())} non-finite values')


def _backward_and_check_grads(total: torch.Tensor, params, leaves=(), what='output') -> None:
    """``total.backward()``; at least one parameter or input leaf gets a gradient, all finite."""
    expect(total.requires_grad, f'the {what} does not require grad: nothing to train')
    total.backward()
    grads = [p.grad for p in list(params) + list(leaves) if p.grad is not None]
    expect(len(grads) > 0, f'backward through the {what} gave no gradient to any parameter '
                           'or input')
    _check_finite(grads, 'gradient')


def _trainable(obj) -> list:
    return [p for p in obj.parameters() if p.requires_grad] if isinstance(
        obj, torch.nn.Module) else []


def _input_leaves(args) -> list:
    return [t for t in float_tensors(args) if t.requires_grad and t.is_leaf]


def _detached(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value) if isinstance(value, list) else \
            tuple(_detached(v) for v in value)
    return value


def first_difference(a, b, where: str = 'output') -> str:
    """'' when ``a`` and ``b`` are identical (tensors, arrays, dicts, sequences, scalars),
    else where they first differ."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f'{where}: a tensor in one run only'
        if a.shape != b.shape:
            return f'{where}: shape {tuple(a.shape)} vs {tuple(b.shape)}'
        same = torch.equal(a, b) or bool(torch.isnan(a).eq(torch.isnan(b)).all() and
                                         torch.equal(a.nan_to_num(), b.nan_to_num()))
        return '' if same else (f'{where}: max difference '
                                f'{(a.double() - b.double()).abs().max().item():.3g}')
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        same = np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind
                              == 'f')
        return '' if same else f'{where}: arrays differ'
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f'{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}'
        for k in a:
            diff = first_difference(a[k], b[k], f'{where}[{k!r}]')
            if diff:
                return diff
        return ''
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f'{where}: length {len(a)} vs {len(b)}'
        for i, (x, y) in enumerate(zip(a, b)):
            diff = first_difference(x, y, f'{where}[{i}]')
            if diff:
                return diff
        return ''
    if type(a) is type(b) and type(a).__eq__ is object.__eq__ and hasattr(a, '__dict__'):
        return first_difference(vars(a), vars(b), f'{where}.vars')  # no == of their own
    try:
        equal = a == b
        return '' if bool(equal) else f'{where}: {a!r} vs {b!r}'
    except Exception:  # noqa: BLE001 - an == that raises (e.g. on arrays inside)
        if type(a) is type(b) and hasattr(a, '__dict__'):
            return first_difference(vars(a), vars(b), f'{where}.vars')
        return f'{where}: cannot compare two {type(a).__name__} objects'


# ----------------------------------------------------------------------------- kinds
def exercise_module(obj, args, example):
    expect(isinstance(obj, torch.nn.Module), f'built a {type(obj).__name__}, not an nn.Module')
    obj.train()
    out = example.built_with(obj, args) if example.built_with else _call(obj, args)
    tensors = float_tensors(out)
    expect(len(tensors) > 0, f'the forward returned no floating-point tensor '
                             f'({type(out).__name__})')
    _check_finite(tensors, 'output')
    differentiable = [t for t in tensors if t.requires_grad]
    if _trainable(obj) or _input_leaves(args):
        expect(len(differentiable) > 0, 'no output is differentiable although the module '
                                        'has trainable parameters')
        total = sum(t.float().mean() for t in differentiable)
        _backward_and_check_grads(total, _trainable(obj), _input_leaves(args))
    return _detached(tensors)


def exercise_classifier(obj, batch, example):
    expect(isinstance(obj, torch.nn.Module), f'built a {type(obj).__name__}, not an nn.Module')
    obj.train()
    img = batch['img']
    logits = obj(**batch, mode='tensor')
    logits = float_tensors(logits)[0] if not isinstance(logits, torch.Tensor) else logits
    expect(tuple(logits.shape) == (img.shape[0], example.num_classes),
           f"mode='tensor' gave shape {tuple(logits.shape)}, expected (B, C) = "
           f'({img.shape[0]}, {example.num_classes})')
    _check_finite([logits], 'logits')
    losses = example.built_with(obj, batch) if example.built_with else obj(**batch, mode='loss')
    expect(isinstance(losses, dict) and losses, f"mode='loss' gave {type(losses).__name__}, "
                                                'expected a dict of losses')
    terms = {k: v for k, v in losses.items() if 'loss' in k}
    expect(len(terms) > 0, f"mode='loss' returned no key containing 'loss': {sorted(losses)}")
    for key, value in terms.items():
        parts = value if isinstance(value, (list, tuple)) else [value]
        for part in parts:
            expect(isinstance(part, torch.Tensor) and part.dim() == 0,
                   f'loss {key!r} is not a scalar tensor')
        _check_finite(parts, f'loss {key!r}')
    total = sum(p for v in terms.values() for p in (v if isinstance(v, (list, tuple)) else [v]))
    _backward_and_check_grads(total, _trainable(obj), what='loss')
    return _detached(dict(logits=logits, **{k: terms[k] for k in terms}))


def exercise_loss(obj, args, example):
    out = example.built_with(obj, args) if example.built_with else _call(obj, args)
    expect(isinstance(out, torch.Tensor), f'the loss returned {type(out).__name__}, '
                                          'expected a tensor')
    expect(out.dim() == 0, f'the loss is not a scalar: shape {tuple(out.shape)}')
    _check_finite([out], 'loss')
    _backward_and_check_grads(out, _trainable(obj), _input_leaves(args), what='loss')
    return out.detach().clone()


def exercise_cam_generator(obj, data, example):
    model = data.get('model') or default_inputs.tiny_cam_classifier(example.num_classes)
    model.eval()
    img = data['img']
    maps = obj(model, img, data.get('class_ids'))
    expect(isinstance(maps, torch.Tensor) and maps.dim() == 4,
           f'expected a (B, C, h, w) tensor, got {getattr(maps, "shape", type(maps))}')
    expect(tuple(maps.shape[:2]) == (img.shape[0], example.num_classes),
           f'maps have shape {tuple(maps.shape)}, expected (B, C, h, w) with B = '
           f'{img.shape[0]} and C = {example.num_classes}')
    _check_finite([maps], 'CAM')
    expect(float(maps.min()) >= 0.0, f'CAMs must be non-negative; minimum {float(maps.min()):.3g}')
    return maps.detach().clone()


def exercise_label_refiner(obj, sample, example):
    """A label-making refiner sets ``label``; a CAM-refining one (first in a chain, e.g.
    PAMR) leaves it unset and returns ``cams`` (K, H, W) in [0, 1] at the image size."""
    out = obj(dict(sample))
    expect(isinstance(out, dict), f'the refiner returned a {type(out).__name__}, expected '
                                  'the sample dict')
    h, w = sample['img'].shape[:2] if 'img' in sample else sample['cams'].shape[1:]
    if out.get('label') is None:
        cams = out.get('cams')
        expect(cams is not None and cams is not sample['cams'],
               "the refiner set no 'label' and did not refine 'cams'")
        cams = np.asarray(cams)
        expect(cams.shape == (len(sample['class_ids']), h, w),
               f'refined CAMs have shape {cams.shape}, expected (K, H, W) = '
               f"({len(sample['class_ids'])}, {h}, {w})")
        expect(bool(np.isfinite(cams).all()) and cams.min() >= 0 and cams.max() <= 1,
               f'refined CAMs must be finite and in [0, 1]; range [{cams.min():.3g}, '
               f'{cams.max():.3g}]')
        return cams.copy()
    label = out['label']
    expect(isinstance(label, np.ndarray) and label.shape == (h, w),
           f'label has shape {getattr(label, "shape", None)}, expected the image size '
           f'{(h, w)}')
    expect(label.dtype == np.uint8, f'label has dtype {label.dtype}, expected uint8')
    bad = sorted(set(np.unique(label).tolist()) - set(range(example.num_classes + 1))
                 - {IGNORE_INDEX})
    expect(not bad, f'label values {bad} outside 0..{example.num_classes} and '
                    f'{IGNORE_INDEX} (ignore)')
    return label.copy()


def exercise_saliency_source(obj, sample, example):
    """Called the way refiners call a source: ``from_sample(sample)``."""
    try:
        sal = obj.from_sample(dict(sample))
        from ...saliency.base import check_saliency
        sal = check_saliency(sal, sample['img'].shape[:2], 'saliency map')
    except ValueError as exc:
        raise ConformanceFailure(str(exc)) from None
    return sal.copy()


def exercise_transform(obj, sample, example):
    out = obj(dict(sample))
    expect(isinstance(out, dict) and 'img' in out, "a transform returns the sample dict "
                                                   "(with 'img')")
    img = out['img']
    hw = tuple(img.shape[1:]) if isinstance(img, torch.Tensor) else tuple(img.shape[:2])
    for key in PIXEL_MAPS:
        if key in out:
            expect(tuple(out[key].shape[-2:]) == hw, f'{key!r} has size '
                   f'{tuple(out[key].shape[-2:])} but the image has {hw}')
    return _detached(out)


def exercise_dataset(obj, _inputs, example):
    """``dataset[0]`` is a sample dict, or a sequence of them (e.g. an image pair)."""
    expect(len(obj) > 0, 'the dataset is empty')
    item = obj[0]
    parts = item if isinstance(item, (list, tuple)) else [item]
    expect(len(parts) > 0 and all(isinstance(p, dict) for p in parts),
           f'dataset[0] is a {type(item).__name__}, expected a sample dict (or a sequence '
           'of them)')
    return _detached(item)


def exercise_build(obj, _inputs, example):
    expect(obj is not None, 'building returned None')
    return None


EXERCISES: Dict[str, Callable] = {
    'module': exercise_module, 'classifier': exercise_classifier, 'loss': exercise_loss,
    'cam_generator': exercise_cam_generator, 'label_refiner': exercise_label_refiner,
    'saliency_source': exercise_saliency_source, 'transform': exercise_transform,
    'dataset': exercise_dataset, 'build': exercise_build,
}
