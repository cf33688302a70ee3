"""Benchmark: training-step overhead of the framework (TrainSegmentor) over a plain PyTorch loop.

Everything comes from the ``deeplab`` stage of ``deeplab::synthetic.py`` (DeepLabV2,
SmallResNet, ASPP rates 2/4/6/8, MSC 0.5/0.75, 7 labels; SyntheticShapes 96 px; the
augmentation of the stage; AdamW 2e-3 with the DeepLab param groups and a poly schedule),
trained on the ground truth (``labels=None``) in batches of ``--batch-size`` 96-px crops,
DataLoader in the main process (``num_workers=0``, the stage's default).  Four measurements,
all in this process with the same torch thread count (``--threads``, default 2):

* compute only: one pre-built, pre-normalised batch; zero_grad, loss forward, backward,
  optimiser step per iteration (no data loading);
* data only: the DataLoader (stage dataset, InfiniteSampler, default_collate) plus the data
  preprocessor, no model;
* plain loop: the two together as a hand-written loop (+ poly lr step);
* framework: the TrainSegmentor stage run by ``wsss_core.pipeline.Pipeline`` in a temporary
  work dir; a HIGHEST-priority hook timestamps every ``after_train_iter``.

Each round runs the four arms (order rotated per round); the table shows the median of
the rounds.  Per-iteration time is the mean over the iterations after ``--warmup`` (from
the timestamp after iteration ``warmup - 1`` to that after the last one, so each interval
also holds the previous iteration's remaining hooks).  Start-up (dataset, model, optimiser,
Runner; up to the first iteration) and the framework's teardown (final checkpoint,
model.pth, manifest) are reported separately.  OpenCV runs single-threaded in every arm
(mmengine's Runner sets ``cv2.setNumThreads(0)``; the other arms do the same).

    .venv/bin/python bench/deeplab_train_overhead.py [--iters 30] [--warmup 5] \
        [--batch-size 16] [--threads 2] [--rounds 3] [--log-interval 10] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from types import SimpleNamespace

import torch

from train_overhead import (STAMPS, add_overhead_arguments, check_overhead_arguments,
                            framework_stamps, overhead_summary, print_arms,
                            register_hook, run_rounds)


def stage_cfg(args) -> dict:
    """The synthetic config's TrainSegmentor stage, on ground truth, for the bench's length."""
    from wsss_core.config import load_config
    cfg = load_config('deeplab::synthetic.py')
    stage = next(s for s in cfg.stages if s['type'] == 'TrainSegmentor').to_dict()
    stage.update(labels=None, max_iters=args.warmup + args.iters, batch_size=args.batch_size,
                 log_interval=args.log_interval, checkpoint_interval=10 ** 6,
                 custom_hooks=[dict(type='BenchIterStamps')])
    return dict(seed=0, data=cfg.data.to_dict(), stages=[stage])


def build_stage_objects(cfg: dict, workdir: str):
    """Dataset and model exactly as the stage builds them (its own methods)."""
    from mmengine.config import Config
    from wsss_core.pipeline.stage import StageContext
    from wsss_core.registry import MODELS, STAGES, build
    stage = build(dict(cfg['stages'][0]), STAGES)
    ctx = StageContext(cfg=Config(cfg), work_dir=workdir, stage_dir=workdir, seed=0)
    train_set = stage.build_train_set(ctx, stage.data_config(ctx))
    torch.manual_seed(0)
    model = build(stage.model_cfg(train_set.num_classes), MODELS)
    return stage, train_set, model


def plain_optimizer(stage, model, total: int):
    """The stage's optimiser (AdamW, DeepLab param groups) and poly schedule, in plain torch."""
    from wsss_core.optim.param_groups import GroupRules, deeplab_param_groups
    ow = stage.options['optim_wrapper']
    opt_cfg = dict(ow['optimizer'])
    assert opt_cfg.pop('type') == 'AdamW'
    groups = deeplab_param_groups(model, opt_cfg['lr'], opt_cfg.get('weight_decay', 0.0),
                                  GroupRules.from_cfg(ow.get('paramwise_cfg')))
    for g in groups:
        for k in ('name', 'lr_mult', 'decay_mult'):
            g.pop(k)
    opt = torch.optim.AdamW(groups, **opt_cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda it: (1 - it / (total + 1)) ** stage.options['power'])
    return opt, sched


def dataloader(stage, train_set):
    from mmengine.dataset import InfiniteSampler, default_collate
    from torch.utils.data import DataLoader
    return DataLoader(train_set, batch_size=stage.options['batch_size'], num_workers=0,
                      sampler=InfiniteSampler(train_set, shuffle=True, seed=0),
                      collate_fn=default_collate)


def train_step(model, opt, data) -> None:
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def run_compute(cfg, workdir, total):
    stage, train_set, model = build_stage_objects(cfg, workdir)
    opt, _ = plain_optimizer(stage, model, total)
    model.train()
    data = model.data_preprocessor(next(iter(dataloader(stage, train_set))), True)
    stamps = []
    for _ in range(total):
        train_step(model, opt, data)
        stamps.append(time.perf_counter())
    return stamps


def run_data(cfg, workdir, total):
    stage, train_set, model = build_stage_objects(cfg, workdir)
    it = iter(dataloader(stage, train_set))
    stamps = []
    for _ in range(total):
        model.data_preprocessor(next(it), True)
        stamps.append(time.perf_counter())
    return stamps


def run_plain(cfg, workdir, total):
    t0 = time.perf_counter()
    stage, train_set, model = build_stage_objects(cfg, workdir)
    opt, sched = plain_optimizer(stage, model, total)
    it = iter(dataloader(stage, train_set))
    model.train()
    start = time.perf_counter()
    stamps = []
    for _ in range(total):
        train_step(model, opt, model.data_preprocessor(next(it), True))
        sched.step()
        stamps.append(time.perf_counter())
    return stamps, start - t0, 0.0


def run_framework(cfg, workdir, total):
    from mmengine.config import Config
    from wsss_core.pipeline import Pipeline
    t0 = time.perf_counter()
    Pipeline(Config(cfg), workdir, device='cpu', progress=False).run()  # every arm on the CPU
    end = time.perf_counter()
    stamps, before_train = framework_stamps(total)
    return stamps, before_train - t0, end - stamps[-1]


ARMS = (('compute', run_compute), ('data', run_data), ('plain', run_plain),
        ('framework', run_framework))
LABELS = dict(compute='fwd+bwd+step, fixed batch', data='data loading + preprocess only',
              plain='plain PyTorch loop', framework='framework (Pipeline/TrainSegmentor)')


def measure(iters: int = 30, warmup: int = 5, batch_size: int = 16, threads: int = 2,
            rounds: int = 3, log_interval: int = 10) -> dict:
    """Run the four arms ``rounds`` times; the figures (``ratio_framework_plain`` ...) as a dict."""
    if min(warmup, iters, rounds) < 1:
        raise ValueError('warmup, iters and rounds must be >= 1')
    torch.set_num_threads(threads)
    import cv2
    cv2.setNumThreads(0)
    import logging
    logging.getLogger('wsss').setLevel(logging.WARNING)
    from wsss_core.plugin_loader import load_plugins
    load_plugins(enabled=['deeplab'])
    register_hook()

    args = SimpleNamespace(iters=iters, warmup=warmup, batch_size=batch_size,
                           log_interval=log_interval)
    cfg = stage_cfg(args)
    from wsss_core.registry import STAGES, build
    crop = build(dict(cfg['stages'][0]), STAGES).options['crop_size']  # the recipe's, if named
    res = dict(iters=iters, warmup=warmup, batch_size=batch_size, crop=crop,
               torch_threads=threads,
               rounds=rounds, cpus=os.cpu_count(), loadavg_before=os.getloadavg()[0])
    res['runs'] = run_rounds(ARMS, cfg, warmup + iters, warmup, rounds, prefix='bench_deeplab_')
    res['framework_torch_threads'] = STAMPS.get('threads')
    res['loadavg_after'] = os.getloadavg()[0]
    res.update(overhead_summary(res['runs']))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_overhead_arguments(p, batch_size=16)
    p.add_argument('--log-interval', type=int, default=10, help="the stage's LoggerHook")
    p.add_argument('--json', default=None, help='write the figures here')
    args = p.parse_args()
    check_overhead_arguments(p, args)
    res = measure(args.iters, args.warmup, args.batch_size, args.threads, args.rounds,
                  args.log_interval)
    med = res['median']
    print(f"DeepLabV2 (SmallResNet, MSC 0.5/0.75) training, batch {args.batch_size} x "
          f"{res['crop']} px, {args.iters} timed iterations after {args.warmup} warm-up, "
          f"median of {args.rounds} rounds; torch threads {args.threads} (framework saw "
          f"{res['framework_torch_threads']}), {res['cpus']} CPUs")
    print_arms(res, LABELS)
    print(f"ratio framework / plain: {res['ratio_framework_plain']:.3f} (medians); per round "
          + ' '.join(f'{x:.3f}' for x in res['ratio_per_round'])
          + f"; compute + data = {med['compute']['s_per_iter'] + med['data']['s_per_iter']:.3f}"
          f" s/iter; load average {res['loadavg_before']:.2f} before, "
          f"{res['loadavg_after']:.2f} after")
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(res, fh, indent=2)


if __name__ == '__main__':
    main()
