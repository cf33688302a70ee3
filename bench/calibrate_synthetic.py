"""Calibrate SyntheticShapes: does a plain CAM see only part of each object?

Standalone plain-PyTorch benchmark (no framework imports except the generator).  It
generates a SyntheticShapes dataset, trains a small from-scratch ResNet-like classifier
(~0.69 M parameters, output stride 8) and prints:

* classification mAP and exact-match accuracy on the validation split;
* plain CAM mIoU over a background-threshold sweep (oracle best threshold), GT classes only;
* saliency-fusion mIoU (background where saliency < 0.5, else argmax of present-class CAMs);
* mean normalised CAM on each part kind, on the rest of the object and on the background;
* recall of present classes (score > 0.5) after erasing the dominant part, all parts, or
  nothing (erased pixels take the object's median body colour), and the false-positive rate;
* two erasing probes (no training): best-threshold mIoU of max(CAM, CAM of the image with
  (a) the GT dominant part erased, (b) the CAM > 0.5 region erased), both on the scale of
  the original image's CAM.

Run (2 cores, possibly shared)::

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/calibrate_synthetic.py \
        [--seed 1] [--set p_context=0.85 --set num_parts=2] [--json out.json]
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from wsss_core.datasets.synthetic_shapes import (PART_NAMES, SyntheticShapesConfig,
                                                 ensure_generated)

THRESHOLDS = np.round(np.arange(0.05, 0.601, 0.05), 2)
MEAN, STD = 0.45, 0.25


# ----------------------------------------------------------------------------- data
def load_split(root: Path, split: str, num_classes: int) -> dict:
    """Read a split of the generated dataset into arrays (images, masks, parts, saliency, y)."""
    lines = (root / 'ImageSets' / 'Segmentation' / f'{split}_cls.txt').read_text().splitlines()
    ids = [ln.split()[0] for ln in lines]
    y = np.zeros((len(ids), num_classes), np.float32)
    for i, ln in enumerate(lines):
        y[i, [int(c) for c in ln.split()[1:]]] = 1

    def read(sub, mode):
        return np.stack([np.asarray(Image.open(root / sub / f'{i}.png').convert(mode))
                         for i in ids])
    mask = np.stack([np.asarray(Image.open(root / 'SegmentationClass' / f'{i}.png')) for i in ids])
    return dict(ids=ids, img=read('JPEGImages', 'RGB'), mask=mask, parts=read('parts', 'L'),
                sal=read('saliency', 'L'), y=y)


def to_input(img_u8: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> normalised float N x 3 x H x W."""
    x = torch.from_numpy(img_u8).permute(0, 3, 1, 2).float()
    return (x / 255.0 - MEAN) / STD


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 8) -> torch.Tensor:
    """Random horizontal flip and random translation (reflect-pad, random crop)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    xp = F.pad(x, (pad, pad, pad, pad), mode='reflect')
    offs = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
    return torch.stack([xp[i, :, a:a + h, b:b + w] for i, (a, b) in enumerate(offs.tolist())])


# ----------------------------------------------------------------------------- model
class Block(nn.Module):
    """BasicBlock: two 3x3 convs with BN, residual (1x1 projection when the shape changes)."""

    def __init__(self, cin, cout, stride=1, dilation=1):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.b1(self.c1(x)))
        out = self.b2(self.c2(out))
        return F.relu(out + (x if self.proj is None else self.proj(x)))


class Net(nn.Module):
    """Stem conv3x3/2 (24), stages 24/48/96/192 strides 1/2/2/1 (dilation 2 last), OS 8."""

    def __init__(self, num_classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24),
                                  nn.ReLU(inplace=True))
        self.stages = nn.Sequential(Block(24, 24), Block(24, 48, 2), Block(48, 96, 2),
                                    Block(96, 192, 1, 2))
        self.classifier = nn.Conv2d(192, num_classes, 1, bias=False)

    def features(self, x):
        return self.stages(self.stem(x))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3), keepdim=True)).flatten(1)

    def cam(self, x):
        """Raw CAMs ReLU(W f) at full input resolution, and the logits."""
        f = self.features(x)
        logits = self.classifier(f.mean((2, 3), keepdim=True)).flatten(1)
        cam = F.relu(self.classifier(f))
        return F.interpolate(cam, x.shape[2:], mode='bilinear', align_corners=False), logits


def train(model, data, epochs, batch, seed, log) -> float:
    """The calibration recipe (docs/synthetic_shapes.md#5-calibration-and-what-to-expect): AdamW
    2e-3 / wd 1e-4, OneCycle (pct_start 0.15), soft-margin loss."""
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = to_input(data['img']), torch.from_numpy(data['y'])
    steps = epochs * math.ceil(len(x_all) / batch)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps,
                                                pct_start=0.15)
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(x_all), generator=gen)
        total, te = 0.0, time.time()
        for s in range(0, len(perm), batch):
            idx = perm[s:s + batch]
            loss = F.multilabel_soft_margin_loss(model(augment(x_all[idx], gen)), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f'  epoch {ep + 1:2d}  loss {total / len(perm):.4f}  {time.time() - te:.1f}s')
    return time.time() - t0


# ----------------------------------------------------------------------------- inference
@torch.no_grad()
def infer(model, img_u8, batch=100):
    """Raw CAMs ReLU(W f) (N, K, H, W float32) and sigmoid scores (N, K)."""
    model.eval()
    cams, scores = [], []
    for s in range(0, len(img_u8), batch):
        cam, logits = model.cam(to_input(img_u8[s:s + batch]))
        cams.append(cam.numpy())
        scores.append(torch.sigmoid(logits).numpy())
    return np.concatenate(cams), np.concatenate(scores)


def normalise(cams, ref=None):
    """Per-image, per-class division by the max of ``ref`` (default: of ``cams``) + 1e-5."""
    ref = cams if ref is None else ref
    return cams / (ref.max((2, 3), keepdims=True) + 1e-5)


# ----------------------------------------------------------------------------- metrics
def average_precision(scores, targets) -> float:
    order = np.argsort(-scores)
    t = targets[order]
    if t.sum() == 0:
        return float('nan')
    prec = np.cumsum(t) / np.arange(1, len(t) + 1)
    return float((prec * t).sum() / t.sum())


def confusion(pred, gt, n) -> np.ndarray:
    flat = gt.ravel().astype(np.int64) * n + pred.ravel()
    return np.bincount(flat, minlength=n * n).reshape(n, n)


def miou(conf) -> float:
    iou = np.diag(conf) / np.maximum(conf.sum(0) + conf.sum(1) - np.diag(conf), 1)
    return float(iou.mean())


def cam_sweep(cams, y, masks) -> dict:
    """mIoU of argmax([thr, CAM_c * y_c]) for every threshold in THRESHOLDS."""
    n = y.shape[1] + 1
    fg = cams * y[:, :, None, None]
    best = fg.max(1)
    arg = fg.argmax(1) + 1
    out = {}
    for thr in THRESHOLDS:
        pred = np.where(best > thr, arg, 0)
        out[float(thr)] = miou(confusion(pred, masks, n))
    return out


def saliency_fusion(cams, y, masks, sal) -> float:
    """Background where saliency < 0.5, else the argmax of the present-class CAMs."""
    fg = np.where(y[:, :, None, None] > 0, cams, -1.0)
    pred = np.where(sal >= 128, fg.argmax(1) + 1, 0)
    return miou(confusion(pred, masks, y.shape[1] + 1))


def part_activation(cams, y, masks, parts, num_parts) -> dict:
    """Mean normalised GT-class CAM on each part kind, the rest of the object, background."""
    gt_cam = np.take_along_axis(cams, np.maximum(masks.astype(np.int64) - 1, 0)[:, None], 1)[:, 0]
    out = {}
    for k in range(1, num_parts + 1):
        sel = (masks > 0) & (parts == k)
        out[PART_NAMES[k - 1]] = float(gt_cam[sel].mean()) if sel.any() else float('nan')
    out['rest_of_object'] = float(gt_cam[(masks > 0) & (parts == 0)].mean())
    bg = (masks == 0)[:, None] & (y > 0)[:, :, None, None]   # present classes, bg pixels
    out['background'] = float(cams[bg].mean())
    return out


def erase(img, masks, parts, kinds) -> np.ndarray:
    """Paint the given part kinds with the median colour of their object's part-free body."""
    out = img.copy()
    for i in range(len(img)):
        for c in np.unique(masks[i]):
            if c == 0:
                continue
            obj = masks[i] == c
            sel = obj & np.isin(parts[i], kinds)
            body = obj & (parts[i] == 0)
            if sel.any() and body.any():
                out[i][sel] = np.median(img[i][body], axis=0).astype(np.uint8)
    return out


def recall_on(scores, y, has_kind) -> float:
    """Fraction of (image, present class) pairs that originally had the part, scored > 0.5."""
    sel = (y > 0) & has_kind
    return float((scores[sel] > 0.5).mean()) if sel.any() else float('nan')


def dominant_present(masks, parts, num_classes) -> np.ndarray:
    """(N, K) bool: class c present and its object shows the dominant part (kind 1)."""
    return np.stack([[np.any((m == c + 1) & (p == 1)) for c in range(num_classes)]
                     for m, p in zip(masks, parts)])


# ----------------------------------------------------------------------------- main
def parse_knobs(items) -> dict:
    knobs = {}
    for item in items or []:
        key, _, value = item.partition('=')
        knobs[key.strip()] = ast.literal_eval(value.strip())
    return knobs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seed', type=int, default=0, help='generator seed (and training seed)')
    ap.add_argument('--epochs', type=int, default=12)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--workers', type=int, default=2, help='generator processes')
    ap.add_argument('--cache', default=None, help='cache root (default: a temp dir)')
    ap.add_argument('--set', action='append', metavar='KNOB=VALUE',
                    help='generator knob override, e.g. --set p_context=0.85')
    ap.add_argument('--json', default=None, help='write the results here')
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    log = lambda s: print(s, flush=True)  # noqa: E731

    cfg = SyntheticShapesConfig(seed=args.seed, **parse_knobs(args.set))
    cache = args.cache or tempfile.mkdtemp(prefix='wsss_calib_')
    t0 = time.time()
    root = ensure_generated(cfg, root=cache, workers=args.workers, progress=False)
    gen_s = time.time() - t0
    log(f'data {root} ({cfg.num_train}+{cfg.num_val} images): {gen_s:.1f}s')
    tr = load_split(root, 'train', cfg.num_classes)
    va = load_split(root, 'val', cfg.num_classes)

    model = Net(cfg.num_classes)
    log(f'params {sum(p.numel() for p in model.parameters()) / 1e6:.3f}M')
    train_s = train(model, tr, args.epochs, args.batch, args.seed, log)

    res = evaluate(model, va, cfg)
    res.update(generation_s=round(gen_s, 1), train_s=round(train_s, 1), seed=args.seed,
               knobs=parse_knobs(args.set), fingerprint=cfg.fingerprint())
    log(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + '\n')


def evaluate(model, va, cfg) -> dict:
    """All the calibration numbers on the validation split."""
    y, masks, parts, sal = va['y'], va['mask'], va['parts'], va['sal']
    raw, scores = infer(model, va['img'])
    cams = normalise(raw)
    aps = [average_precision(scores[:, c], y[:, c]) for c in range(cfg.num_classes)]
    sweep = cam_sweep(cams, y, masks)
    best_thr = max(sweep, key=sweep.get)
    res = dict(mAP=float(np.nanmean(aps)), per_class_AP=[round(a, 4) for a in aps],
               exact_match=float(((scores > 0.5) == (y > 0)).all(1).mean()),
               cam_best_miou=sweep[best_thr], cam_best_thr=best_thr,
               cam_sweep={k: round(v, 4) for k, v in sweep.items()},
               sal_fusion_miou=saliency_fusion(cams, y, masks, sal),
               cam_on=part_activation(cams, y, masks, parts, cfg.num_parts))
    has_dom = dominant_present(masks, parts, cfg.num_classes)
    everything = list(range(1, cfg.num_parts + 1))
    rec = {'none_erased': recall_on(scores, y, has_dom)}
    for name, kinds in (('dominant_erased', [1]), ('all_parts_erased', everything)):
        _, s = infer(model, erase(va['img'], masks, parts, kinds))
        rec[name] = recall_on(s, y, has_dom)
        rec[name + '_false_pos_rate'] = float((s[y == 0] > 0.5).mean())
    res['recall_objects_with_dominant_part'] = rec
    # erasing probes: CAMs of the erased image on the scale of the original image's CAMs
    raw_e, _ = infer(model, erase(va['img'], masks, parts, [1]))
    res['probe_union_gt_dominant_erased'] = max(
        cam_sweep(normalise(np.maximum(raw, raw_e), raw), y, masks).values())
    fill = np.where((cams * y[:, :, None, None]).max(1, keepdims=True)[..., None] > 0.5,
                    np.uint8(round(MEAN * 255)), va['img'][:, None])[:, 0]
    raw_a, _ = infer(model, fill)
    res['probe_union_cam_erased'] = max(
        cam_sweep(normalise(np.maximum(raw, raw_a), raw), y, masks).values())
    return res


if __name__ == '__main__':
    main()
