"""Benchmark: TestSegmentor with the CRF pipelined behind inference (``crf_workers``) vs inline.

Both runs are the stage itself (``TestSegmentor.run``) on the same data and the same
randomly initialised DeepLab v2, timed in the same process one after the other:

* inline (``crf_workers=0``, ``workers=0``): pass 1 (network scores of every image) then
  pass 2 (upsample, softmax, deeplab-preset dense CRF, PNGs) in this process;
* pipelined (``crf_workers=N``): image k's pass 2 runs in one of N worker processes while
  the network infers image k+1 here (pool start-up included in the time).

Inputs: ``--images`` VOC-sized 500x375 images with 21 labels (JPEG + ground-truth PNG made by
``deeplab_crf_workers.write_inputs``, not timed).  The network (``--model``): ``small`` is
the synthetic recipe's DeepLab v2 on the core's SmallResNet with MSC 0.5/0.75, ``r50`` /
``r101`` the reference DeepLab v2 ResNet at output stride 8 with MSC; ``--device cuda``
runs it on the GPU (the CRF stays on the CPU workers, as in the stage).  The predictions
of both runs must be identical.  Threads: ``--threads`` torch threads in this process, 1 in
each CRF worker.

    .venv/bin/python bench/crf_pipeline.py [--images 12] [--crf-workers 1] [--model small]
        [--device cpu|cuda] [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench modules

LABELS = 21
MODELS = dict(
    small=dict(type='DeepLabV2', backbone=dict(type='SmallResNet'), rates=(2, 4, 6, 8),
               msc_scales=(0.5, 0.75)),
    r50=dict(type='DeepLabV2', backbone=dict(type='DeepLabResNet', depth=50),
             msc_scales=(0.5, 0.75)),
    r101=dict(type='DeepLabV2', backbone=dict(type='DeepLabResNet', depth=101),
              msc_scales=(0.5, 0.75)),
)


def write_checkpoint_stage(work_dir: Path, model_name: str) -> None:
    """A finished stand-in for TrainSegmentor: seeded random weights and its manifest."""
    import torch

    from wsss_core.pipeline.manifest import write_manifest
    from wsss_core.registry import MODELS as REGISTRY, build
    cfg = dict(MODELS[model_name], num_classes=LABELS)
    torch.manual_seed(0)
    model = build(cfg, REGISTRY)
    (work_dir / 'deeplab').mkdir(parents=True)
    torch.save(model.state_dict(), work_dir / 'deeplab' / 'model.pth')
    write_manifest(work_dir / 'deeplab', dict(artifacts=dict(
        weights='model.pth', model=cfg, num_classes=LABELS - 1,
        class_names=[f'class_{i}' for i in range(1, LABELS)])))


def timed_run(cfg, work_dir: Path, name: str, device: str, crf_workers: int) -> dict:
    from wsss_core.pipeline.stage import StageContext
    from wsss_core.pipeline.segmentor_inference import TestSegmentor
    stage = TestSegmentor(name, checkpoint='deeplab', split='val', crf=True,
                          crf_workers=crf_workers)
    ctx = StageContext(cfg=cfg, work_dir=work_dir, stage_dir=work_dir / name, device=device,
                       progress=False)
    t0, c0 = time.perf_counter(), time.process_time()
    record = stage.run(ctx)
    wall = time.perf_counter() - t0
    pngs = {p.name: p.read_bytes() for p in sorted((work_dir / name / 'predictions').glob('*'))}
    return dict(wall=wall, cpu_main=time.process_time() - c0, pngs=pngs,
                miou=record['metrics'].get('miou'))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=12)
    p.add_argument('--crf-workers', type=int, default=1)
    p.add_argument('--model', choices=sorted(MODELS), default='small')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1, help='torch threads in this process')
    p.add_argument('--json', default=None, help='write the figures here')
    args = p.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    import cv2
    import torch
    from mmengine.config import Config
    cv2.setNumThreads(1)
    torch.set_num_threads(args.threads)
    from wsss_core.plugin_loader import load_plugins
    load_plugins(enabled=['deeplab'])
    from deeplab_crf_workers import write_inputs

    tmp = Path(tempfile.mkdtemp(prefix='bench_crf_pipeline_'))
    try:
        write_inputs(tmp / 'data', args.images)
        write_checkpoint_stage(tmp / 'work', args.model)
        cfg = Config(dict(data=dict(type='VOCLayoutDataset', data_root=str(tmp / 'data'),
                                    num_classes=LABELS - 1, img_suffix='.jpg')))
        load = os.getloadavg()[0]
        inline = timed_run(cfg, tmp / 'work', 'inline', args.device, 0)
        piped = timed_run(cfg, tmp / 'work', 'pipelined', args.device, args.crf_workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    same = len(inline['pngs']) == args.images and inline['pngs'] == piped['pngs']
    rate = dict(inline=args.images / inline['wall'], pipelined=args.images / piped['wall'])
    res = dict(images=args.images, size='500x375', labels=LABELS, model=args.model,
               model_cfg=MODELS[args.model], device=args.device, threads=args.threads,
               crf_workers=args.crf_workers, crf_preset='deeplab', cpus=os.cpu_count(),
               images_per_s=rate, ratio=rate['pipelined'] / rate['inline'],
               main_process_cpu_s=dict(inline=inline['cpu_main'], pipelined=piped['cpu_main']),
               identical=bool(same), loadavg_before=load, loadavg_after=os.getloadavg()[0])
    print(f"TestSegmentor, DeepLab v2 '{args.model}' on {args.device} ({args.threads} torch "
          f"threads), deeplab CRF preset; {args.images} images 500x375, {LABELS} labels; "
          f'{os.cpu_count()} CPUs, load average before {load:.2f}')
    print(f"  {'inline (crf_workers=0)':<26}: {rate['inline']:6.2f} img/s  "
          f"({inline['wall'] / args.images:.2f} s/img)")
    print(f"  {f'pipelined (crf_workers={args.crf_workers})':<26}: {rate['pipelined']:6.2f} "
          f"img/s  ({piped['wall'] / args.images:.2f} s/img, pool start-up included)")
    print(f"  {'ratio pipelined / inline':<26}: {res['ratio']:6.2f}x  "
          f"(load average after {res['loadavg_after']:.2f})")
    print(f"  {'identical predictions':<26}: {same}")
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(res, fh, indent=2)


if __name__ == '__main__':
    main()
