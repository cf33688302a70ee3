"""Benchmark: memory and time of one EDAM CMA training step, SDPA vs explicit attention.

One step = forward + backward of the collaborative multi-attention module (1x1 reduce
D -> 128, K per-class encoders, K heads; training mode, dropouts on) on random features
(2P, D, s, s) and DA-like masks (2P, K, s, s), both requiring grad as in training.  The
reference shapes are D = 4096, s = 46 (368 px crops), K = 20; smaller by arguments for CPU.

Each variant (attention kernel x attention dropout) runs in a fresh subprocess and reports,
per pair:

- ``peak MB``: CUDA ``max_memory_allocated`` above the memory held before the step; on CPU
  the process's peak RSS (``ru_maxrss``) above the RSS before the step, with glibc's mmap
  threshold fixed at 64 KiB so that freed large blocks go back to the OS (RSS ~ live memory);
- ``saved MB``: bytes of the distinct activations autograd saves for backward
  (``saved_tensors_hooks``; parameters and the inputs excluded), device-independent;
- ``step s``: best wall time of ``--repeats`` steps after one warm-up step.

PyTorch's CPU fused attention kernel has no dropout: with attention dropout > 0 in training,
SDPA on CPU falls back to the math kernel (the attention matrix is stored as in the explicit
path).  The ``attn_dropout=0`` rows show the fused kernel; CUDA kernels support dropout.

    .venv/bin/python bench/edam_cma_memory.py [--pairs 2] [--size 23] [--classes 20]
        [--in-channels 4096] [--threads 2] [--device cpu] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

VARIANTS = (('sdpa', 0.1), ('explicit', 0.1), ('sdpa', 0.0), ('explicit', 0.0))


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _saved_bytes(step, exclude) -> int:
    """Bytes of distinct storages saved for backward during ``step()``."""
    import torch
    seen = {}

    def pack(t):
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in exclude:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(backward=False)
    return sum(seen.values())


def worker(args) -> dict:
    """One variant in this process: returns its measurements (totals, not per pair)."""
    import torch
    torch.set_num_threads(args.threads)
    from wsss_edam.models.collaborative_attention import CollaborativeMultiAttention
    device = torch.device(args.device)
    torch.manual_seed(0)
    cma = CollaborativeMultiAttention(args.in_channels, args.classes, attention=args.attention,
                                      attn_dropout=args.attn_dropout).to(device).train()
    n, s = 2 * args.pairs, args.size
    feat = torch.randn(n, args.in_channels, s, s, device=device, requires_grad=True)
    masks = torch.nn.functional.normalize(torch.randn(n, args.classes + 1, s, s, device=device),
                                          dim=1).abs()[:, :args.classes].detach()
    masks.requires_grad_()
    cuda = device.type == 'cuda'

    def step(backward=True):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = cma(feat, masks)
        if backward:
            logits.float().square().mean().backward()
            cma.zero_grad(set_to_none=True)
            feat.grad = masks.grad = None
        if cuda:
            torch.cuda.synchronize()

    exclude = {p.untyped_storage().data_ptr() for p in cma.parameters()}
    exclude |= {feat.untyped_storage().data_ptr(), masks.untyped_storage().data_ptr()}
    saved = _saved_bytes(step, exclude)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base, maxrss_before = _rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()  # warm-up; its peak counts (the first step is the largest)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        if maxrss_before * 1024 > base + peak:  # the step never exceeded the set-up's peak
            peak = float('nan')
    return dict(attention=args.attention, attn_dropout=args.attn_dropout, peak_bytes=peak,
                saved_bytes=saved, step_s=min(times))


def run_variant(args, attention: str, attn_dropout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', '--attention', attention,
           '--attn-dropout', str(attn_dropout)] + _shared_argv(args)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return dict(attention=attention, attn_dropout=attn_dropout,
                    error=(proc.stderr.strip().splitlines() or ['?'])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _shared_argv(args) -> list:
    argv = ['--pairs', str(args.pairs), '--size', str(args.size), '--classes', str(args.classes),
            '--in-channels', str(args.in_channels), '--threads', str(args.threads),
            '--repeats', str(args.repeats), '--device', args.device]
    return argv + (['--bf16'] if args.bf16 else [])


def _per_pair(row: dict, pairs: int) -> dict:
    if 'error' in row:
        return row
    mb = 1024 * 1024
    return dict(row, peak_mb_per_pair=row['peak_bytes'] / mb / pairs,
                saved_mb_per_pair=row['saved_bytes'] / mb / pairs,
                step_s_per_pair=row['step_s'] / pairs)


def report(args, rows: list) -> dict:
    print(f"CMA training step: {args.pairs} pair(s), {args.size}x{args.size} tokens per image "
          f"({2 * args.size ** 2} per sequence), {args.classes} classes, D={args.in_channels}, "
          f"device {args.device}{', bf16 autocast' if args.bf16 else ''}, threads {args.threads}")
    print(f"{'attention':>10} {'attn_drop':>9} {'peak MB/pair':>13} {'saved MB/pair':>14} "
          f"{'step s/pair':>12}")
    for r in rows:
        if 'error' in r:
            print(f"{r['attention']:>10} {r['attn_dropout']:>9} failed: {r['error']}")
            continue
        print(f"{r['attention']:>10} {r['attn_dropout']:>9} {r['peak_mb_per_pair']:>13.1f} "
              f"{r['saved_mb_per_pair']:>14.1f} {r['step_s_per_pair']:>12.3f}")
    ratios = {}
    for drop in sorted({r['attn_dropout'] for r in rows}, reverse=True):
        pair = {r['attention']: r for r in rows if r['attn_dropout'] == drop and 'error' not in r}
        if {'sdpa', 'explicit'} <= set(pair):
            sd, ex = pair['sdpa'], pair['explicit']
            ratios[f'attn_dropout={drop}'] = dict(
                peak=sd['peak_bytes'] / ex['peak_bytes'], step=sd['step_s'] / ex['step_s'],
                saved=sd['saved_bytes'] / ex['saved_bytes'])
    for key, r in ratios.items():
        print(f"ratio sdpa/explicit ({key}): peak {r['peak']:.3f}, saved {r['saved']:.3f}, "
              f"step time {r['step']:.3f}")
    return dict(config=dict(pairs=args.pairs, size=args.size, classes=args.classes,
                            in_channels=args.in_channels, device=args.device, bf16=args.bf16,
                            threads=args.threads, repeats=args.repeats),
                rows=rows, ratios=ratios)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--pairs', type=int, default=2)
    p.add_argument('--size', type=int, default=23, help='feature map side (46 = 368 px crop)')
    p.add_argument('--classes', type=int, default=20)
    p.add_argument('--in-channels', type=int, default=4096)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--bf16', action='store_true', help='run the step under bf16 autocast')
    p.add_argument('--no-dropout-rows', action='store_true',
                   help='only the training configuration (attention dropout 0.1)')
    p.add_argument('--json', help='write the figures to this JSON file')
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--attention', default='sdpa', help=argparse.SUPPRESS)
    p.add_argument('--attn-dropout', type=float, default=0.1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    variants = VARIANTS[:2] if args.no_dropout_rows else VARIANTS
    rows = [_per_pair(run_variant(args, a, d), args.pairs) for a, d in variants]
    result = report(args, rows)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
