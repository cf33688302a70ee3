"""Benchmark: DeepLab v2 step time in the default (NCHW) layout vs channels-last (NHWC).

What ``channels_last=True`` on TrainSegmentor / TestSegmentor does
(:func:`wsss_core.pipeline.memory_format.to_channels_last`), timed on random weights and
random uint8 batches through the model's data preprocessor:

* train: preprocessor + the MSC loss + backward + SGD step;
* infer: preprocessor + ``fused_logits`` (MSC max fusion), no gradients.

Models: ``small`` (the synthetic recipe: SmallResNet, ASPP 2/4/6/8, MSC 0.5/0.75; train
batch 16 of 96 px) and ``r50`` (DeepLab v2 ResNet-50, OS 8, MSC; train batch 2 of 321 px);
inference on one 321 px image.  The two layouts alternate (NCHW, NHWC, NCHW, NHWC), each
build timed over ``--repeats`` steps after 2 warm-up steps; the figure is the best median
per layout, the ratio NCHW time / NHWC time (> 1: channels-last is faster).

    .venv/bin/python bench/channels_last.py [--models small r50] [--device cpu|cuda]
        [--threads 1] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import time

MODELS = dict(
    small=(dict(type='DeepLabV2', num_classes=4, backbone=dict(type='SmallResNet'),
                rates=(2, 4, 6, 8), msc_scales=(0.5, 0.75)), (16, 96)),
    r50=(dict(type='DeepLabV2', num_classes=21, backbone=dict(type='DeepLabResNet', depth=50),
              msc_scales=(0.5, 0.75)), (2, 321)),
)


def step_time(cfg: dict, nhwc: bool, train: bool, batch: int, size: int, device: str,
              repeats: int) -> float:
    """Median seconds per step of a freshly built model (seed 0)."""
    import torch

    from wsss_core.pipeline.memory_format import to_channels_last
    from wsss_core.registry import MODELS as REGISTRY, build
    torch.manual_seed(0)
    model = build(cfg, REGISTRY).to(device).train(train)
    if nhwc:
        model = to_channels_last(model, 'bench')
    img = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    target = torch.randint(0, cfg['num_classes'], (batch, size, size), device=device)
    optim = torch.optim.SGD(model.parameters(), lr=1e-4)

    def step():
        x = model.data_preprocessor(dict(img=img))['img']
        if train:
            losses = model(x, gt_seg=target, mode='loss')
            loss = sum(v for k, v in losses.items() if k.startswith('loss'))
            optim.zero_grad()
            loss.backward()
            optim.step()
        else:
            with torch.no_grad():
                model.fused_logits(x)
        if device.startswith('cuda'):
            torch.cuda.synchronize()

    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', choices=sorted(MODELS), default=['small', 'r50'])
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    import torch
    torch.set_num_threads(args.threads)
    from wsss_core.plugin_loader import load_plugins
    load_plugins(enabled=['deeplab'])
    print(f'DeepLab v2 on {args.device}, {args.threads} torch threads, {os.cpu_count()} CPUs, '
          f'load average before {os.getloadavg()[0]:.2f}')
    for name in args.models:
        cfg, (batch, size) = MODELS[name]
        for train, b, s in ((True, batch, size), (False, 1, 321)):
            best = {}
            for nhwc in (False, True, False, True):
                t = step_time(cfg, nhwc, train, b, s, args.device, args.repeats)
                best[nhwc] = min(best.get(nhwc, t), t)
            print(f"  {name:<6} {'train' if train else 'infer'} batch {b:>2} x {s} px: "
                  f'NCHW {best[False]:.4f} s, NHWC {best[True]:.4f} s, '
                  f'ratio NCHW / NHWC {best[False] / best[True]:.2f}', flush=True)
    print(f'  load average after {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
