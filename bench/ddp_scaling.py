"""Benchmark: DDP training on 2 CPU processes (gloo) vs 1 process, images/s.

The step is TrainClassifier's (the quickstart's CAMClassifier + SmallResNet, channels-last,
multilabel soft-margin loss, AdamW 2e-3 / 1e-4) on an in-memory, pre-normalised batch of
``--batch`` random images (random multi-hot labels) per process, so the figure is the
training compute plus DDP's gradient all-reduce, without data loading.  Both arms start
fresh spawned processes; the ``--cores`` CPUs are split evenly: 1 process uses ``cores``
torch threads, each of 2 processes ``cores / 2`` (1 thread each on 2 cores).  Every process
runs ``--warmup`` steps, meets the others at a barrier, runs ``--steps`` timed steps and
meets them again:

    images/s = processes x batch x steps / (t_end - t_start)        ratio = 2 processes / 1

The single process trains the bare model (no process group, no DDP wrapper), as a run
without ``torchrun`` does.

    .venv/bin/python bench/ddp_scaling.py [--batch 32] [--size 96] [--steps 20] \
        [--warmup 3] [--cores 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def build_model():
    """The quickstart classifier (CAMClassifier + SmallResNet, channels-last), 6 classes."""
    from wsss_core.components import register_core_components
    from wsss_core.registry import MODELS, build
    register_core_components()
    return build(dict(type='CAMClassifier', backbone=dict(type='SmallResNet'), num_classes=6,
                      channels_last=True), MODELS)


def _worker(rank: int, world: int, threads: int, batch: int, size: int, steps: int,
            warmup: int, tmp: str) -> None:
    """One process: set threads, join the gloo group (world > 1), time the steps, report."""
    torch.set_num_threads(threads)
    import torch.distributed as dist
    if world > 1:
        dist.init_process_group('gloo', init_method=f'file://{tmp}/store', rank=rank,
                                world_size=world)
    torch.manual_seed(0)   # same initial weights on every rank
    model = build_model().train()
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(1 + rank)
    img = torch.randn(batch, 3, size, size, generator=g).contiguous(
        memory_format=torch.channels_last)
    labels = (torch.rand(batch, 6, generator=g) < 0.3).float()

    def step():
        loss = model(img, labels, mode='loss')['loss_cls']
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - t0
    Path(tmp, f'rank{rank}.json').write_text(json.dumps(dict(
        rank=rank, seconds=seconds, threads=torch.get_num_threads())))
    if world > 1:
        dist.destroy_process_group()


def run_processes(world: int, threads: int, batch: int, size: int, steps: int,
                  warmup: int) -> dict:
    """Spawn ``world`` processes of :func:`_worker`; images/s over the slowest rank's time."""
    import torch.multiprocessing as mp
    with tempfile.TemporaryDirectory(prefix='bench_ddp_') as tmp:
        mp.spawn(_worker, args=(world, threads, batch, size, steps, warmup, tmp),
                 nprocs=world, join=True)
        ranks = [json.loads(Path(tmp, f'rank{r}.json').read_text()) for r in range(world)]
    seconds = max(r['seconds'] for r in ranks)
    return dict(processes=world, threads_per_process=[r['threads'] for r in ranks],
                seconds=seconds, images_per_s=world * batch * steps / seconds)


def measure(batch: int = 32, size: int = 96, steps: int = 20, warmup: int = 3,
            cores: int = 2) -> dict:
    """images/s with 1 process (``cores`` threads) and 2 DDP processes (``cores // 2`` each)."""
    if cores < 2:
        raise ValueError('cores must be >= 2 (two processes of at least one thread)')
    one = run_processes(1, cores, batch, size, steps, warmup)
    two = run_processes(2, cores // 2, batch, size, steps, warmup)
    return dict(batch_per_process=batch, size=size, steps=steps, warmup=warmup, cores=cores,
                cpus=os.cpu_count(), one_process=one, two_processes=two,
                ratio=two['images_per_s'] / one['images_per_s'])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, default=32, help='per process')
    p.add_argument('--size', type=int, default=96)
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--cores', type=int, default=2, help='CPUs shared out between processes')
    p.add_argument('--json', default=None, help='write the figures here')
    args = p.parse_args()
    res = measure(args.batch, args.size, args.steps, args.warmup, args.cores)
    print(f'CAMClassifier + SmallResNet training steps, batch {args.batch} x {args.size} px per '
          f'process, {args.steps} timed steps after {args.warmup}, {args.cores} cores shared')
    for key in ('one_process', 'two_processes'):
        r = res[key]
        print(f"  {r['processes']} process(es), {r['threads_per_process']} threads: "
              f"{r['images_per_s']:7.1f} img/s")
    print(f"  ratio 2 / 1: {res['ratio']:.2f}x")
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(res, fh, indent=2)


if __name__ == '__main__':
    main()
