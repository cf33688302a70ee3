"""The benchmark suite: one command, one table of ratios measured in the same run, and JSON.

    .venv/bin/python bench/suite.py [--quick] [--device cpu|cuda] [--json bench/out/suite.json]
        [--only NAME ...] [--work-dirs DIR ...] [--threads N] [--set GROUP.KEY=VALUE ...]

Groups (``--only``; each row: baseline, measured, ratio = measured / baseline, target):

    classifier_overhead  TrainClassifier step time vs a plain PyTorch loop (target < 1.05),
                         and data-loading images/s vs model images/s (quickstart classifier)
    deeplab_overhead     TrainSegmentor (DeepLabV2) step time vs a plain loop (< 1.05)
    cam                  batched multi-scale + flip CAMs vs the per-scale loop (>= 1)
    crf                  dense-CRF images/s with N workers (N = CPU count) vs 1 (>= 0.8 N)
    ddp                  images/s of DDP on 2 CPU processes vs 1 process (> 1)
    flops                SmallResNet / ResNet-50 forward FLOP/s vs a large matmul's
    stages               wall time (and peak memory, where recorded) per stage, read from
                         the manifests of existing work dirs; nothing is run

``--quick`` uses small sizes and fewer repeats (a few minutes on 2 cores); without it the
sizes are those of the single benchmarks' own defaults (a quiet machine or a GPU).
``--device cuda`` moves the classifier, CAM and FLOP measurements to the GPU; CRF, DDP
(gloo) and the DeepLab overhead stay on the CPU (the rows say which device they used).
``--set cam.images=8`` overrides one parameter of one group's preset (lists: a,b).
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench modules

import suite_rows  # noqa: E402
from stage_times import DEFAULT_WORK_DIRS  # noqa: E402

#: group -> the suite_rows function that measures it, in the order they run
GROUPS = dict(stages=suite_rows.stages, flops=suite_rows.flops, cam=suite_rows.cam,
              crf=suite_rows.crf, classifier_overhead=suite_rows.classifier_overhead,
              deeplab_overhead=suite_rows.deeplab_overhead, ddp=suite_rows.ddp)

#: full-size parameters (the single benchmarks' defaults); None = decided at run time
FULL: Dict[str, dict] = dict(
    stages=dict(work_dirs=list(DEFAULT_WORK_DIRS)),
    flops=dict(models=['small_resnet', 'resnet50'], repeats=3, matmul_n=2048, batch=None,
               size=None),
    cam=dict(images=64, size=96, batch=16, repeats=3),
    crf=dict(images=16, preset='psa', workers=None, h=375, w=500),
    classifier_overhead=dict(iters=30, warmup=5, batch_size=64, rounds=3, image_size=None),
    deeplab_overhead=dict(iters=30, warmup=5, batch_size=16, rounds=3),
    ddp=dict(batch=32, size=96, steps=20, warmup=3, cores=None),
)
#: what --quick changes
QUICK: Dict[str, dict] = dict(
    flops=dict(repeats=2, matmul_n=1024),
    cam=dict(images=32, repeats=2),
    crf=dict(images=8),
    classifier_overhead=dict(iters=10, warmup=3, rounds=1),
    deeplab_overhead=dict(iters=10, warmup=3, rounds=1),
    ddp=dict(steps=8, warmup=2),
)
#: groups whose measure() takes the torch thread count
THREADED = ('flops', 'cam', 'classifier_overhead', 'deeplab_overhead')


def parse_override(text: str, presets: Dict[str, dict]) -> tuple:
    """``GROUP.KEY=VALUE`` -> (group, key, value); VALUE as a Python literal, else a string;
    for list-valued keys a comma-separated list."""
    try:
        target, raw = text.split('=', 1)
        group, key = target.split('.', 1)
    except ValueError:
        raise SystemExit(f'--set {text!r}: write GROUP.KEY=VALUE, e.g. cam.images=8')
    if group not in presets:
        raise SystemExit(f'--set {text!r}: unknown group {group!r}; choose from {list(presets)}')
    if key not in presets[group]:
        raise SystemExit(f'--set {text!r}: {group} has no parameter {key!r}; it has '
                         f'{sorted(presets[group])}')
    if isinstance(presets[group][key], list):
        return group, key, [v for v in raw.split(',') if v]
    try:
        return group, key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return group, key, raw


def presets(quick: bool, threads: int, work_dirs: Optional[Sequence[str]] = None,
            overrides: Sequence[str] = ()) -> Dict[str, dict]:
    """Each group's keyword arguments: FULL, updated by QUICK, threads, work dirs, --set."""
    out = copy.deepcopy(FULL)
    if quick:
        for group, params in QUICK.items():
            out[group].update(params)
    for group in THREADED:
        out[group]['threads'] = threads
    if work_dirs:
        out['stages']['work_dirs'] = list(work_dirs)
    for text in overrides:
        group, key, value = parse_override(text, out)
        out[group][key] = value
    return out


def run_suite(only: Optional[Sequence[str]] = None, quick: bool = False, device: str = 'cpu',
              threads: Optional[int] = None, work_dirs: Optional[Sequence[str]] = None,
              overrides: Sequence[str] = ()) -> dict:
    """Run the selected groups (all by default) in order; the suite's JSON-ready result."""
    groups = list(only) if only else list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f'unknown groups {unknown}; choose from {list(GROUPS)}')
    threads = threads or os.cpu_count() or 1
    params = presets(quick, threads, work_dirs, overrides)
    res = dict(quick=quick, device=device, device_name=device_name(device), threads=threads,
               cpus=os.cpu_count(), env={k: os.environ.get(k) for k in
                                         ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY')},
               versions=versions(), started=time.time(), loadavg_before=os.getloadavg()[0],
               groups={}, rows=[], skipped=[], errors=[])
    for group in (g for g in GROUPS if g in groups):
        t0 = time.perf_counter()
        try:
            rows, skipped = GROUPS[group](params[group], device)
        except Exception as exc:  # one failing measurement must not hide the others
            rows, skipped = [], []
            res['errors'].append(dict(group=group, error=f'{type(exc).__name__}: {exc}'))
        res['groups'][group] = dict(params=params[group], seconds=time.perf_counter() - t0,
                                    rows=len(rows))
        res['rows'] += rows
        res['skipped'] += skipped
    res['duration_s'] = time.time() - res['started']
    res['loadavg_after'] = os.getloadavg()[0]
    return res


def device_name(device: str) -> str:
    """The CPU model (from /proc/cpuinfo or platform) or the CUDA device's name."""
    if str(device).startswith('cuda'):
        import torch
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    import torch
    return dict(python=platform.python_version(), torch=torch.__version__)


def _fmt(fig: dict) -> str:
    return f"{fig['label']} {fig['value']:.4g} {fig['unit']}"


def format_table(res: dict) -> str:
    """The one table: row, baseline, measured, ratio, target, met, note; then what was
    skipped or failed."""
    head = ('row', 'baseline', 'measured', 'ratio', 'target', 'met', 'note')
    lines = [(r['name'], _fmt(r['baseline']), _fmt(r['measured']), f"{r['ratio']:.3f}",
              r['target'] or '-',
              {True: 'yes', False: 'NO', None: '-'}[r['target_met']], r['note'])
             for r in res['rows']]
    widths = [max(len(x[i]) for x in [head] + lines) for i in range(len(head) - 1)]
    out = [f"benchmark suite ({'quick' if res['quick'] else 'full'}), device "
           f"{res['device']} ({res['device_name']}), {res['cpus']} CPUs, {res['threads']} "
           f"torch threads, load average {res['loadavg_before']:.2f} before / "
           f"{res['loadavg_after']:.2f} after, {res['duration_s']:.0f} s"]
    for cells in [head] + lines:
        out.append('  '.join(c.ljust(w) for c, w in zip(cells, widths)) + '  ' + cells[-1])
    out += [f"skipped {s['group']}: {s['what']} ({s['reason']})" for s in res['skipped']]
    out += [f"FAILED {e['group']}: {e['error']}" for e in res['errors']]
    return '\n'.join(out)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='small sizes, fewer repeats')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--json', default='bench/out/suite.json', help='write the result here')
    p.add_argument('--only', nargs='+', choices=list(GROUPS), metavar='NAME',
                   help=f'run only these groups: {", ".join(GROUPS)}')
    p.add_argument('--work-dirs', nargs='+', default=None,
                   help='work dirs whose stage manifests give the stage times (default: '
                        + ', '.join(DEFAULT_WORK_DIRS) + ')')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: CPUs)')
    p.add_argument('--set', dest='overrides', nargs='+', default=[], metavar='GROUP.KEY=VALUE',
                   help='override one preset parameter, e.g. cam.images=8')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            raise SystemExit('--device cuda: no CUDA device is visible; use --device cpu')
    res = run_suite(args.only, args.quick, args.device, args.threads, args.work_dirs,
                    args.overrides)
    res['command'] = ' '.join(['python bench/suite.py',
                               *(sys.argv[1:] if argv is None else argv)])
    print(format_table(res))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))
        print(f'written: {args.json}')
    return 1 if res['errors'] else 0


if __name__ == '__main__':
    sys.exit(main())
