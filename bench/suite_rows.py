"""The benchmark suite's measurements: each runs one bench module and returns table rows.

A row compares a measured figure with its baseline taken in the same run::

    dict(name, group, title, device,
         baseline=dict(label, value, unit), measured=dict(label, value, unit),
         ratio=measured / baseline, target=str or None, target_met=bool or None,
         note=str, details=<the bench module's own figures>)

Every function here is ``fn(params: dict, device: str) -> (rows, skipped)``; ``params``
are the keyword arguments of the bench module's ``measure`` (the suite's presets).
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

Rows = Tuple[List[dict], List[dict]]


def figure(label: str, value: float, unit: str) -> dict:
    return dict(label=label, value=float(value), unit=unit)


def row(name: str, group: str, title: str, device: str, baseline: dict, measured: dict,
        target: Optional[str] = None, met: Optional[bool] = None, note: str = '',
        details: Optional[dict] = None) -> dict:
    """One table row; ``ratio`` = measured value / baseline value."""
    return dict(name=name, group=group, title=title, device=device, baseline=baseline,
                measured=measured, ratio=measured['value'] / baseline['value'], target=target,
                target_met=met, note=note, details=details or {})


def overhead_row(name: str, group: str, what: str, res: dict, device: str) -> dict:
    """Framework s/iter over plain-loop s/iter (medians); target under 5 % overhead."""
    med = res['median']
    ratio = med['framework']['s_per_iter'] / med['plain']['s_per_iter']
    return row(name, group, f'{what}: framework step time / plain PyTorch loop', device,
               figure('plain loop', med['plain']['s_per_iter'], 's/iter'),
               figure('framework', med['framework']['s_per_iter'], 's/iter'),
               '< 1.05 (overhead under 5 %)', ratio < 1.05,
               f"batch {res['batch_size']}, {res['iters']} iters after {res['warmup']}, "
               f"median of {res['rounds']} rounds, {res['torch_threads']} threads",
               details=res)


def deeplab_overhead(params: dict, device: str) -> Rows:
    """Item 1: TrainSegmentor (DeepLabV2) vs a plain loop (bench/deeplab_train_overhead.py)."""
    import deeplab_train_overhead
    res = deeplab_train_overhead.measure(**params)
    return [overhead_row('train_overhead/deeplab', 'deeplab_overhead',
                         'DeepLabV2 TrainSegmentor', res, 'cpu')], []


def classifier_overhead(params: dict, device: str) -> Rows:
    """Items 1 and 5: TrainClassifier vs a plain loop; data loading vs model images/s
    (bench/classifier_train_overhead.py)."""
    import classifier_train_overhead
    res = classifier_train_overhead.measure(device=device, **params)
    ips = res['images_per_s']
    data_row = row('data_vs_model/quickstart_classifier', 'classifier_overhead',
                   'data loading images/s (DataLoader + pipeline, no model) / model images/s '
                   '(fwd+bwd+step, data in memory)', device,
                   figure('model', ips['compute'], 'img/s'),
                   figure('data loading', ips['data'], 'img/s'),
                   '> 1 (loading keeps up with the model)', ips['data'] > ips['compute'],
                   f"quickstart classifier, batch {res['batch_size']} x {res['image_size']} px, "
                   f"num_workers 0, {res['torch_threads']} threads",
                   details=dict(images_per_s=ips))
    return [overhead_row('train_overhead/classifier', 'classifier_overhead',
                         'quickstart TrainClassifier', res, device), data_row], []


def cam(params: dict, device: str) -> Rows:
    """Item 2: batched multi-scale + flip CAMs vs the per-scale loop (bench/cam_throughput.py)."""
    import cam_throughput
    res = cam_throughput.measure(device=device, **params)
    ips = res['images_per_s']
    return [row('cam/multiscale_batched', 'cam',
                'batched multi-scale + flip CAM inference / per-scale, per-flip loop', device,
                figure('loop', ips['loop'], 'img/s'), figure('batched', ips['batched'], 'img/s'),
                '>= 1 (at least as fast)', ips['batched'] >= ips['loop'],
                f"SmallResNet, {res['images']} images {res['size']} px, scales "
                f"{res['scales']} + flip, batch {res['batch']}, best of {res['repeats']}; "
                f"max |difference| {res['max_abs_diff']:.1e}", details=res)], []


def crf(params: dict, device: str) -> Rows:
    """Item 3: dense-CRF images/s, 1 vs N workers (bench/crf_throughput.py)."""
    import crf_throughput
    params = dict(params)
    params['workers'] = params.get('workers') or os.cpu_count()
    res = crf_throughput.measure(**params)
    n = res['workers']
    ips = res['images_per_s']
    return [row(f'crf/workers_{n}_vs_1', 'crf',
                f'dense-CRF images/s with {n} worker processes / 1 (inline)', 'cpu',
                figure('1 worker', ips['1'], 'img/s'),
                figure(f'{n} workers', ips[str(n)], 'img/s'),
                f'>= {0.8 * n:.1f} (near-linear: 80 % of {n})', res['ratio'] >= 0.8 * n,
                f"{res['images']} images {res['size']}, preset {res['preset']}, pool start-up "
                f"included, identical labels: {res['identical']}", details=res)], []


def ddp(params: dict, device: str) -> Rows:
    """Item 4: DDP on 2 CPU processes vs 1 process (bench/ddp_scaling.py)."""
    import ddp_scaling
    params = dict(params)
    params['cores'] = params.get('cores') or max(2, os.cpu_count() or 2)
    res = ddp_scaling.measure(**params)
    one, two = res['one_process'], res['two_processes']
    return [row('ddp/2_processes_vs_1', 'ddp',
                'training images/s, DDP on 2 CPU processes (gloo) / 1 process', 'cpu',
                figure(f"1 process x {one['threads_per_process'][0]} threads",
                       one['images_per_s'], 'img/s'),
                figure(f"2 processes x {two['threads_per_process'][0]} threads",
                       two['images_per_s'], 'img/s'),
                '> 1 (2 processes faster)', res['ratio'] > 1,
                f"quickstart classifier steps, batch {res['batch_per_process']} x "
                f"{res['size']} px per process, {res['steps']} steps, {res['cores']} cores "
                'shared out', details=res)], []


def flops(params: dict, device: str) -> Rows:
    """Item 6: backbone forward FLOP/s vs a large matmul's (bench/flops_vs_matmul.py)."""
    import flops_vs_matmul
    res = flops_vs_matmul.measure(device=device, **params)
    peak = figure(f"matmul {res['matmul_n']}^2", res['matmul_flops_per_s'] / 1e9, 'GFLOP/s')
    rows = []
    for name, f in res['backbones'].items():
        rows.append(row(f'flops/{name}', 'flops',
                        f'{name} forward achieved FLOP/s / large matmul FLOP/s', device, peak,
                        figure(name, f['flops_per_s'] / 1e9, 'GFLOP/s'),
                        note=f"batch {f['batch']} x {f['size']} px, {f['flops'] / 1e9:.2f} "
                             f"GFLOP counted, {res['threads']} threads",
                        details=dict(res, backbones={name: f})))
    return rows, []


def stages(params: dict, device: str) -> Rows:
    """Items 7 and 8: wall time and peak memory per stage from existing manifests
    (bench/stage_times.py); nothing is run."""
    import stage_times
    res = stage_times.collect(params['work_dirs'])
    rows, skipped = [], [dict(group='stages', what=s['work_dir'], reason=s['reason'])
                         for s in res['skipped']]
    for wd, run in res['work_dirs'].items():
        label = os.path.basename(os.path.normpath(wd))
        for r in run['stages']:
            if not r['finished']:
                skipped.append(dict(group='stages', what=f"{wd}/{r['stage']}",
                                    reason=f"no manifest yet ({r['state']})"))
                continue
            peak = r['peak_memory']
            rows.append(row(f"stage_time/{label}/{r['stage']}", 'stages',
                            f"wall time of stage {r['stage']} ({r['type']}) / the run's "
                            'finished stages', 'recorded',
                            figure('run total', run['total_s'], 's'),
                            figure('stage', r['duration_s'], 's'),
                            note='peak memory: ' + (peak if isinstance(peak, str) else
                                                    ', '.join(f'{k} {v}'
                                                              for k, v in peak.items())),
                            details=dict(r, work_dir=wd)))
    return rows, skipped
