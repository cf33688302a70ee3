"""Benchmark: training-step overhead of TrainClassifier over a plain PyTorch loop.

Everything comes from the ``classify`` stage of the quickstart (``core::quickstart.py``:
CAMClassifier + SmallResNet, channels-last, NormalizeImages; SyntheticShapes 96 px, 6
classes; flip + reflect-pad-8 crop; batch 64; AdamW 2e-3, weight decay 1e-4), trained for
one epoch of ``warmup + iters`` batches (the training split is generated with exactly that
many images; no validation).  Four arms, all in this process with the same torch thread
count, as in ``deeplab_train_overhead.py`` (see ``train_overhead.py``):

* compute only: one pre-built, pre-normalised batch; zero_grad, loss forward, backward,
  optimiser step per iteration (the model's images/s with the data in memory);
* data only: the DataLoader (stage dataset and transforms, DefaultSampler, default_collate,
  ``num_workers=0``, the stage's default) plus the data preprocessor, no model;
* plain loop: the two together as a hand-written loop (+ an lr schedule step);
* framework: the TrainClassifier stage run by ``wsss_core.pipeline.Pipeline``.

    .venv/bin/python bench/classifier_train_overhead.py [--iters 30] [--warmup 5] \
        [--batch-size 64] [--threads 2] [--rounds 3] [--image-size 96] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Optional

import torch

from train_overhead import (STAMPS, add_overhead_arguments, check_overhead_arguments,
                            framework_stamps, overhead_summary, print_arms,
                            register_hook, run_rounds, stamp)

LABELS = dict(compute='fwd+bwd+step, fixed batch', data='data loading + preprocess only',
              plain='plain PyTorch loop', framework='framework (Pipeline/TrainClassifier)')


def stage_cfg(iters: int, warmup: int, batch_size: int, image_size: Optional[int] = None,
              log_interval: int = 10) -> dict:
    """The quickstart's classify stage for one epoch of ``warmup + iters`` batches."""
    from wsss_core.config import load_config
    cfg = load_config('core::quickstart.py')
    stage = next(s for s in cfg.stages if s['type'] == 'TrainClassifier').to_dict()
    stage.update(max_epochs=1, batch_size=batch_size, val_split=None,
                 log_interval=log_interval, custom_hooks=[dict(type='BenchIterStamps')])
    data = cfg.data.to_dict()
    data['generator'].update(num_train=batch_size * (warmup + iters), num_val=2)
    if image_size:
        data['generator']['image_size'] = image_size
    data['progress'] = False
    return dict(seed=0, data=data, stages=[stage])


def build_stage_objects(cfg: dict, workdir: str, device: str):
    """The stage, its training set and model, built by the stage's own methods."""
    from mmengine.config import Config
    from wsss_core.pipeline.stage import StageContext
    from wsss_core.registry import STAGES, build
    stage = build(dict(cfg['stages'][0]), STAGES)
    ctx = StageContext(cfg=Config(cfg), work_dir=workdir, stage_dir=workdir, seed=0,
                       device=device, progress=False)
    train_set = stage.build_train_set(ctx, stage.data_config(ctx))
    model = stage.build_model(ctx, stage.model_cfg(train_set.num_classes)).to(device)
    return stage, train_set, model


def dataloader(stage, train_set):
    """The loader the stage's Runner builds: DefaultSampler (shuffled), default_collate."""
    from mmengine.dataset import DefaultSampler, default_collate
    from torch.utils.data import DataLoader
    return DataLoader(train_set, batch_size=stage.options['batch_size'], num_workers=0,
                      sampler=DefaultSampler(train_set, shuffle=True, seed=0),
                      collate_fn=default_collate)


def plain_optimizer(model, total: int):
    """AdamW 2e-3 / 1e-4 (the stage's default) and a one-cycle-like lr schedule."""
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    warm = max(1, round(0.15 * total))

    def factor(it: int) -> float:
        if it < warm:
            return 1 / 25 + (1 - 1 / 25) * it / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (it - warm) / max(1, total - warm))))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_step(model, opt, data) -> None:
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def arms(device: str):
    """The four arms ``fn(cfg, workdir, total)`` on ``device``."""
    def compute(cfg, workdir, total):
        stage, train_set, model = build_stage_objects(cfg, workdir, device)
        opt, _ = plain_optimizer(model, total)
        model.train()
        data = model.data_preprocessor(next(iter(dataloader(stage, train_set))), True)
        stamps = []
        for _ in range(total):
            train_step(model, opt, data)
            stamps.append(stamp())
        return stamps

    def data_only(cfg, workdir, total):
        stage, train_set, model = build_stage_objects(cfg, workdir, device)
        it = iter(dataloader(stage, train_set))
        stamps = []
        for _ in range(total):
            model.data_preprocessor(next(it), True)
            stamps.append(stamp())
        return stamps

    def plain(cfg, workdir, total):
        t0 = time.perf_counter()
        stage, train_set, model = build_stage_objects(cfg, workdir, device)
        opt, sched = plain_optimizer(model, total)
        it = iter(dataloader(stage, train_set))
        model.train()
        start = time.perf_counter()
        stamps = []
        for _ in range(total):
            train_step(model, opt, model.data_preprocessor(next(it), True))
            sched.step()
            stamps.append(stamp())
        return stamps, start - t0, 0.0

    def framework(cfg, workdir, total):
        from mmengine.config import Config
        from wsss_core.pipeline import Pipeline
        t0 = time.perf_counter()
        Pipeline(Config(cfg), workdir, device=device, progress=False).run()
        end = time.perf_counter()
        stamps, before_train = framework_stamps(total)
        return stamps, before_train - t0, end - stamps[-1]

    return (('compute', compute), ('data', data_only), ('plain', plain),
            ('framework', framework))


def measure(iters: int = 30, warmup: int = 5, batch_size: int = 64, threads: int = 2,
            rounds: int = 3, image_size: Optional[int] = None, device: str = 'cpu',
            log_interval: int = 10) -> dict:
    """Run the four arms ``rounds`` times; the figures as a dict (``ratio_framework_plain``,
    ``images_per_s`` of the data-only and compute-only arms ...)."""
    if min(warmup, iters, rounds) < 1:
        raise ValueError('warmup, iters and rounds must be >= 1')
    torch.set_num_threads(threads)
    import cv2
    cv2.setNumThreads(0)
    import logging
    logging.getLogger('wsss').setLevel(logging.WARNING)
    from wsss_core.components import register_core_components
    register_core_components()
    register_hook()
    cfg = stage_cfg(iters, warmup, batch_size, image_size, log_interval)
    res = dict(iters=iters, warmup=warmup, batch_size=batch_size,
               image_size=cfg['data']['generator']['image_size'], torch_threads=threads,
               rounds=rounds, device=device, cpus=os.cpu_count(),
               loadavg_before=os.getloadavg()[0])
    res['runs'] = run_rounds(arms(device), cfg, warmup + iters, warmup, rounds,
                             prefix='bench_classifier_')
    res['framework_torch_threads'] = STAMPS.get('threads')
    res['loadavg_after'] = os.getloadavg()[0]
    res.update(overhead_summary(res['runs']))
    res['images_per_s'] = {name: batch_size / m['s_per_iter']
                           for name, m in res['median'].items()}
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_overhead_arguments(p, batch_size=64)
    p.add_argument('--image-size', type=int, default=None, help='default: the quickstart 96')
    p.add_argument('--device', default='cpu')
    p.add_argument('--json', default=None, help='write the figures here')
    args = p.parse_args()
    check_overhead_arguments(p, args)
    res = measure(args.iters, args.warmup, args.batch_size, args.threads, args.rounds,
                  args.image_size, args.device)
    print(f"TrainClassifier (quickstart: CAMClassifier + SmallResNet) training, batch "
          f"{args.batch_size} x {res['image_size']} px, {args.iters} timed iterations after "
          f"{args.warmup} warm-up, median of {args.rounds} rounds; torch threads "
          f"{args.threads} (framework saw {res['framework_torch_threads']}), device "
          f"{args.device}, {res['cpus']} CPUs")
    print_arms(res, LABELS)
    ips = res['images_per_s']
    print(f"ratio framework / plain: {res['ratio_framework_plain']:.3f} (medians); per round "
          + ' '.join(f'{x:.3f}' for x in res['ratio_per_round'])
          + f"; data loading {ips['data']:.0f} img/s vs model {ips['compute']:.0f} img/s; "
          f"load average {res['loadavg_before']:.2f} before, {res['loadavg_after']:.2f} after")
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(res, fh, indent=2)


if __name__ == '__main__':
    main()
