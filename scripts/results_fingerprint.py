"""Every stage metric of a small quickstart and a small ``oaa::synthetic.py``, to check that a
refactoring changes no result.

A redesign lands in steps that must keep the results identical.  The full-size check is the
real quickstart and ``oaa::synthetic.py`` (tens of minutes on a CPU); this script is the fast
one to run after every step: both pipelines shrunk by counts and sizes only (the core's 16 +
8 images of 48 px, small networks, one or two epochs; :mod:`wsss_oaa.tiny_configs`), run from
scratch in a temporary folder, every numeric metric of every stage's manifest collected.

    python scripts/results_fingerprint.py --save before.json     # before the change
    python scripts/results_fingerprint.py --compare before.json  # after: exit 1 on a difference

``--compare`` prints each metric whose value moved by more than ``--tol`` (default 1e-6) or
that appeared / disappeared.  One thread, fixed seeds: the run is deterministic on a machine.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')


def quickstart_cfg():
    from wsss_core.config import load_config
    from wsss_oaa.tiny_configs import TINY_GENERATOR
    return load_config('core::quickstart.py', {
        'data.generator': dict(TINY_GENERATOR), 'data.progress': False,
        'stages.classify.max_epochs': 2, 'stages.classify.batch_size': 8})


def oaa_cfg():
    from wsss_core.config import load_config
    from wsss_oaa.tiny_configs import shrink_synthetic
    return shrink_synthetic(load_config('oaa::synthetic.py'))


def run(cfg, work_dir: Path) -> dict:
    """``{stage: {metric: value}}`` of every finished stage (numbers only, flattened)."""
    from wsss_core.pipeline import Pipeline
    results = Pipeline(cfg, work_dir, progress=False).run()
    return {r.name: _numbers((r.manifest or {}).get('metrics') or {}) for r in results}


def _numbers(tree, prefix: str = '') -> dict:
    out = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            out.update(_numbers(value, name + '.'))
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)):
            out[name] = float(value)
    return out


def fingerprint() -> dict:
    import torch
    torch.set_num_threads(1)
    from wsss_core.plugin_loader import load_plugins
    load_plugins(['deeplab', 'oaa'])
    with tempfile.TemporaryDirectory(prefix='wsss_fingerprint_') as tmp:
        os.environ['WSSS_CACHE'] = os.path.join(tmp, 'cache')
        return {'quickstart': run(quickstart_cfg(), Path(tmp) / 'quickstart'),
                'oaa_synthetic': run(oaa_cfg(), Path(tmp) / 'oaa')}


def differences(before: dict, after: dict, tol: float) -> list:
    """Lines naming every metric that moved by more than ``tol`` or exists on one side."""
    lines = []
    for run_name in sorted(set(before) | set(after)):
        b, a = before.get(run_name, {}), after.get(run_name, {})
        for stage in sorted(set(b) | set(a)):
            bs, as_ = b.get(stage, {}), a.get(stage, {})
            for key in sorted(set(bs) | set(as_)):
                x, y = bs.get(key), as_.get(key)
                where = f'{run_name} / {stage} / {key}'
                if x is None or y is None:
                    lines.append(f'{where}: {x} -> {y}')
                elif not (math.isnan(x) and math.isnan(y)) and abs(x - y) > tol:
                    lines.append(f'{where}: {x!r} -> {y!r} ({y - x:+.3g})')
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--save', metavar='JSON', help='write the fingerprint here')
    group.add_argument('--compare', metavar='JSON', help='compare with a saved fingerprint')
    parser.add_argument('--tol', type=float, default=1e-6)
    args = parser.parse_args(argv)
    got = fingerprint()
    count = sum(len(m) for r in got.values() for m in r.values())
    if args.save:
        Path(args.save).write_text(json.dumps(got, indent=1, sort_keys=True))
        print(f'fingerprint: {count} metrics of {sum(len(r) for r in got.values())} stages '
              f'-> {args.save}')
        return 0
    diff = differences(json.loads(Path(args.compare).read_text()), got, args.tol)
    print('\n'.join(diff) if diff else f'identical: {count} metrics (tol {args.tol:g})')
    return 1 if diff else 0


if __name__ == '__main__':
    sys.exit(main())
