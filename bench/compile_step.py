"""Benchmark: the training stages' ``compile=True`` option (torch.compile
of the model forward) against eager execution, both run by the Pipeline.

The stage is the quickstart's ``classify`` (CAMClassifier + SmallResNet, channels-last,
SyntheticShapes, batch 64) for one epoch of ``warmup + iters`` batches, as in
``classifier_train_overhead.py``.  Two arms, rotated over ``rounds``:

* eager: the stage as configured;
* compiled: the same stage with ``compile=True`` (inductor; on CPU it generates C++ / OpenMP
  kernels and needs a C++ compiler).

Figures: steady-state seconds per iteration after the warm-up (the warm-up must cover the
compilation, which happens in the first iterations), the ratio eager / compiled (> 1: the
compiled step is faster), and the extra time of the first ``warmup`` iterations (the
compilation cost).

    .venv/bin/python bench/compile_step.py [--iters 20] [--warmup 5] [--batch-size 64] \
        [--threads 2] [--rounds 2] [--device cpu] [--json out.json]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import torch

from classifier_train_overhead import stage_cfg
from train_overhead import (STAMPS, add_overhead_arguments, check_overhead_arguments,
                            framework_stamps, register_hook, run_rounds)


def arms(device: str):
    def run(cfg, workdir, total):
        from mmengine.config import Config
        from wsss_core.pipeline import Pipeline
        t0 = time.perf_counter()
        Pipeline(Config(cfg), workdir, device=device, progress=False).run()
        end = time.perf_counter()
        stamps, before_train = framework_stamps(total)
        return stamps, stamps[0] - before_train, end - stamps[-1]

    def compiled(cfg, workdir, total):
        cfg = copy.deepcopy(cfg)
        cfg['stages'][0]['compile'] = True
        return run(cfg, workdir, total)

    return (('eager', run), ('compiled', compiled))


def measure(iters=20, warmup=5, batch_size=64, threads=2, rounds=2, device='cpu') -> dict:
    torch.set_num_threads(threads)
    import logging
    logging.getLogger('wsss').setLevel(logging.WARNING)
    from wsss_core.components import register_core_components
    register_core_components()
    register_hook()
    cfg = stage_cfg(iters, warmup, batch_size)
    res = dict(iters=iters, warmup=warmup, batch_size=batch_size, torch_threads=threads,
               rounds=rounds, device=device, cpus=os.cpu_count(),
               torch=torch.__version__, loadavg_before=os.getloadavg()[0])
    res['runs'] = run_rounds(arms(device), cfg, warmup + iters, warmup, rounds,
                             prefix='bench_compile_')
    res['loadavg_after'] = os.getloadavg()[0]
    med = {name: {k: statistics.median(r[k] for r in runs) for k in ('s_per_iter', 'startup_s')}
           for name, runs in res['runs'].items()}
    res['median'] = med
    res['ratio_eager_compiled'] = med['eager']['s_per_iter'] / med['compiled']['s_per_iter']
    res['first_iter_extra_s'] = med['compiled']['startup_s'] - med['eager']['startup_s']
    del STAMPS['iters']
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_overhead_arguments(p, batch_size=64)
    p.set_defaults(iters=20, rounds=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--json', default=None)
    args = p.parse_args()
    check_overhead_arguments(p, args)
    res = measure(args.iters, args.warmup, args.batch_size, args.threads, args.rounds,
                  args.device)
    print(f"TrainClassifier (quickstart classify) eager vs compile=True, batch "
          f"{args.batch_size}, {args.iters} timed iterations after {args.warmup} warm-up, median "
          f"of {args.rounds} rounds, torch {res['torch']}, {args.threads} threads, device "
          f"{args.device}, {res['cpus']} CPUs")
    for name, m in res['median'].items():
        each = ' '.join(f"{r['s_per_iter']:.3f}" for r in res['runs'][name])
        print(f"{name:<10} {m['s_per_iter']:.3f} s/iter (rounds {each}); first iteration "
              f"{m['startup_s']:.1f} s")
    print(f"ratio eager / compiled: {res['ratio_eager_compiled']:.3f}; compilation adds "
          f"{res['first_iter_extra_s']:.1f} s to the first iteration; load average "
          f"{res['loadavg_before']:.2f} before, {res['loadavg_after']:.2f} after")
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(res, fh, indent=2)


if __name__ == '__main__':
    main()
