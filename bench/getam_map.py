"""Benchmark: the GETAM map, reference per-(image, class) backward loop vs the batched map.

GETAMNet (random weights) on a batch of ``--batch`` 4 random ``--size`` 256 x 256 crops (the
training crop) with about 1.5 labels per image (fixed seed: 2, 1, 2, 1 of 20 classes), for a
ViT-B-sized backbone (``--large``, default the GETAM default ``vitb_hybrid``) and a small one
(``--small``: a ViT-S/16, 384 wide, 12 blocks).  Per model and repeat, in this process:

* reference: ``getam_maps_reference`` as the reference runs it
  (docs/methods/getam.md#24-the-getam-map): one forward with the attention hooks, then one
  ``logits[b, c].backward(retain_graph=True)`` per (image, class), parameter gradients
  included;  timed as forward + loop;
* batched: ``getam_maps`` (forward with the blocks before ``start_layer`` outside autograd,
  then ``autograd.grad`` w.r.t. the attentions of blocks 6..11, one backward per label round);
  ``batched vmap``: the rounds as one ``is_grads_batched`` backward;
* shared forward (the joint phase: the forward is the training forward): the reference loop
  vs ``getam_maps_from_logits(retain_graph=True)`` on the same forward's logits.

The table shows medians over ``--repeats`` (3; the ViT-B-sized model: ``--large-repeats``, 1 by
default, as its reference loop alone takes about 90 s on 2 CPU threads; the whole default run
about 5 minutes); the ratio target is >= 5x for the maps.  Also
printed: the largest |difference| between the reference and batched maps (they must agree).
Figures go to ``--json`` (default ``bench/out/getam_map.json``).

    .venv/bin/python bench/getam_map.py [--repeats 3] [--large-repeats 1] [--threads 2] \
        [--device cpu|cuda] [--large vitb_hybrid] [--small-only] [--json bench/out/getam_map.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

SMALL = dict(model_name='vit_small_patch16_384', hook_blocks=(2, 5, 8, 11))
LABEL_COUNTS = (2, 1, 2, 1)


def bench_labels(batch: int, num_classes: int, seed: int = 0) -> list:
    gen = torch.Generator().manual_seed(seed)
    counts = [LABEL_COUNTS[i % len(LABEL_COUNTS)] for i in range(batch)]
    return [sorted(torch.randperm(num_classes, generator=gen)[:k].tolist()) for k in counts]


def build_model(backbone: dict, num_classes: int, device):
    import wsss_getam.models.getam_net  # noqa: F401  (registers GETAMNet)
    from wsss_core.registry import MODELS, build
    torch.manual_seed(0)
    model = build(dict(type='GETAMNet', backbone=dict(type='GETAMViT', **backbone),
                       num_classes=num_classes), MODELS)
    return model.to(device).train()


class Timer:
    def __init__(self, device):
        self.cuda = torch.device(device).type == 'cuda'

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def one_round(model, img, labels, start: int, clock) -> tuple:
    """Seconds of every arm on one batch, and the reference and batched maps."""
    from wsss_getam.getam_map import (getam_maps, getam_maps_from_logits,
                                      getam_maps_reference_from_logits)
    bb, fn, size = model.backbone, model.cls_logits, img.shape[-2:]
    t = {}
    with bb.capturing_attention(grads=True):
        t0 = clock()
        logits = fn(img)
        t1 = clock()
        ref = getam_maps_reference_from_logits(logits, bb, labels, size, start,
                                               model.parameters())
        t2 = clock()
        getam_maps_from_logits(logits, bb, labels, size, start, retain_graph=True)
        t3 = clock()
        getam_maps_from_logits(logits, bb, labels, size, start, retain_graph=True,
                               grads_batched=True)
        t4 = clock()
    del logits
    t.update(forward=t1 - t0, reference_loop=t2 - t1, shared_rounds=t3 - t2,
             shared_vmap=t4 - t3, reference=t2 - t0)
    t0 = clock()
    maps = getam_maps(fn, bb, img, labels, start)
    t1 = clock()
    getam_maps(fn, bb, img, labels, start, grads_batched=True)
    t2 = clock()
    t.update(batched=t1 - t0, batched_vmap=t2 - t1)
    return t, ref, maps


def run_model(name: str, backbone: dict, args, device, repeats: int) -> dict:
    model = build_model(backbone, args.classes, device)
    img = torch.randn(args.batch, 3, args.size, args.size, device=device)
    labels = bench_labels(args.batch, args.classes)
    clock = Timer(device)
    one_round(model, img[:1, :, :64, :64], [labels[0]], args.start_layer, clock)   # warm-up
    rounds, diff, peak = [], 0.0, 0.0
    for _ in range(repeats):
        t, ref, maps = one_round(model, img, labels, args.start_layer, clock)
        rounds.append(t)
        diff = max(diff, (ref - maps).abs().max().item())
        peak = max(peak, ref.abs().max().item())
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    pairs = sum(len(ids) for ids in labels)
    return dict(model=name, backbone=bb_name(backbone), labels=labels, pairs=pairs, repeats=repeats,
                rounds=max(len(ids) for ids in labels), seconds=med,
                ratio_maps=med['reference'] / med['batched'],
                ratio_maps_vmap=med['reference'] / med['batched_vmap'],
                ratio_shared=med['reference_loop'] / med['shared_rounds'],
                ratio_shared_vmap=med['reference_loop'] / med['shared_vmap'],
                max_abs_diff=diff, max_value=peak)


def bb_name(backbone: dict) -> str:
    from wsss_getam.models.vit_backbone import BACKBONES
    name = backbone['model_name']
    return BACKBONES.get(name, {}).get('model_name', name)


def print_result(r: dict) -> None:
    s = r['seconds']
    print(f"\n{r['model']}: {r['backbone']}, {r['pairs']} (image, class) pairs in "
          f"{r['rounds']} rounds, labels {r['labels']}, median of {r['repeats']}")
    print(f"  {'arm':34s} {'seconds':>9s}")
    rows = [('reference (forward + per-pair loop)', 'reference'), ('  of which forward', 'forward'),
            ('  of which per-pair backward loop', 'reference_loop'),
            ('batched getam_maps', 'batched'), ('batched getam_maps, vmap', 'batched_vmap'),
            ('shared forward: batched rounds', 'shared_rounds'),
            ('shared forward: batched vmap', 'shared_vmap')]
    for label, key in rows:
        print(f'  {label:34s} {s[key]:9.3f}')
    print(f"  ratio maps    reference / batched : {r['ratio_maps']:6.2f}x  "
          f"(vmap {r['ratio_maps_vmap']:.2f}x)  target >= 5x")
    print(f"  ratio shared  loop / batched      : {r['ratio_shared']:6.2f}x  "
          f"(vmap {r['ratio_shared_vmap']:.2f}x)")
    print(f"  max |reference - batched| = {r['max_abs_diff']:.2e} (max value {r['max_value']:.2e})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--classes', type=int, default=20)
    p.add_argument('--start-layer', type=int, default=6)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--large-repeats', type=int, default=1)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--large', default='vitb_hybrid',
                   help='the ViT-B-sized backbone: a GETAMViT BACKBONES key or timm name')
    p.add_argument('--small-only', action='store_true', help='skip the ViT-B-sized model')
    p.add_argument('--json', default=os.path.join(os.path.dirname(__file__), 'out',
                                                  'getam_map.json'))
    args = p.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device here')
    print(f'GETAM map, batch {args.batch} x {args.size}px, {args.classes} classes, start_layer '
          f'{args.start_layer}, {args.device}, {args.threads} threads')
    models = [('small', SMALL, args.repeats)]
    if not args.small_only:
        models.append(('large', dict(model_name=args.large), args.large_repeats))
    results = []
    for name, backbone, repeats in models:
        results.append(run_model(name, backbone, args, args.device, repeats))
        print_result(results[-1])
    out = dict(args=vars(args), torch=torch.__version__, results=results)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, 'w') as fh:
        json.dump(out, fh, indent=2)
    print(f'\nwrote {args.json}')


if __name__ == '__main__':
    main()
