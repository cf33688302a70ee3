"""Shared parts of the training-step overhead benchmarks (framework stage vs plain loop).

``deeplab_train_overhead.py`` (TrainSegmentor) and ``classifier_train_overhead.py``
(TrainClassifier) both time four arms -- compute only, data only, the plain PyTorch loop
and the framework's stage run by the Pipeline -- in rotated rounds and compare medians:

    overhead ratio = median framework s/iter / median plain s/iter

where s/iter is the mean over the iterations after the warm-up,
``(t_last - t_{warmup-1}) / (n - warmup)`` (:func:`per_iter`).  The framework's per-iteration
timestamps come from :class:`BenchIterStamps`, a HIGHEST-priority hook.
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from typing import Callable, Dict, Sequence, Tuple

import torch

STAMPS: dict = {}
ARM_KEYS = ('s_per_iter', 'startup_s', 'teardown_s')


def stamp() -> float:
    """``time.perf_counter()`` after the queued CUDA work has finished (if CUDA is in use)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def per_iter(stamps, warmup: int) -> float:
    """Mean seconds per iteration after the first ``warmup`` (stamps taken after each one)."""
    return (stamps[-1] - stamps[warmup - 1]) / (len(stamps) - warmup)


def register_hook() -> None:
    """Register ``BenchIterStamps``: timestamps of every ``after_train_iter`` into STAMPS."""
    from mmengine.hooks import Hook
    from wsss_core.registry import HOOKS

    @HOOKS.register_module(force=True)
    class BenchIterStamps(Hook):
        priority = 'HIGHEST'

        def before_train(self, runner):
            STAMPS['threads'] = torch.get_num_threads()
            STAMPS['before_train'] = time.perf_counter()
            STAMPS['iters'] = []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            STAMPS['iters'].append(stamp())


def framework_stamps(total: int) -> Tuple[list, float]:
    """The framework arm's iteration stamps (checked complete) and its train start time."""
    stamps = STAMPS['iters']
    assert len(stamps) == total, (len(stamps), total)
    return stamps, STAMPS['before_train']


def run_rounds(arms: Sequence[Tuple[str, Callable]], cfg: dict, total: int, warmup: int,
               rounds: int, prefix: str = 'bench_') -> dict:
    """Run every arm ``rounds`` times, order rotated per round; per-run figures by arm.

    An arm is ``fn(cfg, workdir, total)`` returning the per-iteration stamps, or
    ``(stamps, startup_s, teardown_s)``.
    """
    runs: Dict[str, list] = {name: [] for name, _ in arms}
    tmp = tempfile.mkdtemp(prefix=prefix)
    n = len(arms)
    try:
        for r in range(rounds):
            # rotate the order so that a slow spell on shared CPUs hits the arms evenly
            for name, fn in list(arms[r % n:]) + list(arms[:r % n]):
                load = os.getloadavg()[0]
                out = fn(cfg, os.path.join(tmp, f'{name}{r}'), total)
                stamps, startup, teardown = out if isinstance(out, tuple) else (out, None, None)
                runs[name].append(dict(s_per_iter=per_iter(stamps, warmup), startup_s=startup,
                                       teardown_s=teardown, loadavg_before=load, round=r))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return runs


def medians(runs: dict) -> dict:
    """Median of each figure over the rounds, per arm (None where an arm has no such figure)."""
    return {name: {k: (None if arm[0][k] is None else statistics.median(x[k] for x in arm))
                   for k in ARM_KEYS}
            for name, arm in runs.items()}


def overhead_summary(runs: dict) -> dict:
    """Medians, the framework / plain ratio of the medians and the ratio of each round."""
    med = medians(runs)
    return dict(median=med,
                ratio_framework_plain=med['framework']['s_per_iter'] / med['plain']['s_per_iter'],
                ratio_per_round=[f['s_per_iter'] / p['s_per_iter']
                                 for f, p in zip(runs['framework'], runs['plain'])])


def print_arms(res: dict, labels: dict) -> None:
    """The per-arm table of an overhead benchmark's result."""
    print(f"{'arm':<36}{'s/iter':>8}{'rounds':>22}{'start-up s':>11}{'teardown s':>11}")
    for name, m in res['median'].items():
        each = ' '.join(f"{x['s_per_iter']:.3f}" for x in res['runs'][name])
        su = '' if m['startup_s'] is None else f"{m['startup_s']:.2f}"
        td = '' if m['teardown_s'] is None else f"{m['teardown_s']:.2f}"
        print(f"{labels[name]:<36}{m['s_per_iter']:8.3f}{each:>22}{su:>11}{td:>11}")


def add_overhead_arguments(parser, batch_size: int) -> None:
    """The command-line options every framework-vs-plain-loop benchmark takes."""
    parser.add_argument('--iters', type=int, default=30,
                        help='timed iterations (after warm-up)')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--batch-size', type=int, default=batch_size)
    parser.add_argument('--threads', type=int, default=2, help='torch threads, every arm')
    parser.add_argument('--rounds', type=int, default=3,
                        help='repeat all arms, report medians')


def check_overhead_arguments(parser, args) -> None:
    """Refuse counts below one (with argparse's usage message)."""
    if min(args.warmup, args.iters, args.rounds) < 1:
        parser.error('--warmup, --iters and --rounds must be >= 1')
