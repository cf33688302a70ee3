"""gpu_check: the CUDA paths outside the training stages, and the GPU column's ratios.

Every check is ``fn(ctx, f)`` (``ctx``: device, sizes, work dirs; ``f``: the
:class:`~gpu_check.Findings` it fills) and reuses the bench modules' own measurements.
Float32 comparisons run with TF32 off (:func:`gpu_check_probe.exact_fp32`) and state their
tolerance as ``|device - cpu| <= atol + rtol |cpu|`` element-wise, ``atol`` a fraction of
the reference's largest magnitude where the values have no natural scale (maps, logits).

=================  ============================================================================
check              what runs on the device, and what must hold
=================  ============================================================================
edam_cma           EDAM's CMA forward + backward with the reference's attention dropout (0.1)
                   on a fused SDPA kernel only (flash / memory-efficient; bf16 autocast, and
                   float32): finite; dropout off, float32: SDPA = explicit on the device and
                   device = CPU (rtol 1e-4, atol 1e-5 x max); peak memory per pair, SDPA /
                   explicit, at the reference's 46 x 46 tokens, D 4096, 20 classes (bf16)
getam_map          the GETAM map: batched = the per-(image, class) reference loop and the
                   vmapped backward (``is_grads_batched``) = the rounds on the device (atol
                   1e-4 x max), device = CPU (rtol 1e-3, atol 1e-3 x max); timing ratios
cam                batched multi-scale + flip CAMs vs the per-scale loop (equal, atol 1e-4 x
                   max); device = CPU on the same weights (rtol 1e-3, atol 1e-4 x max)
channels_last      DeepLab v2 NCHW vs NHWC step times (small, ResNet-50); NHWC = NCHW and
                   device = CPU logits (rtol 1e-3, atol 1e-4 x max)
compile            quickstart TrainClassifier, eager vs ``compile=True`` (inductor), both
                   ``amp='auto'``: finite losses, first-iteration loss compiled = eager
                   (rtol 1e-3 in float32, 2e-2 under autocast); s/iter ratio
crf_pipeline       TestSegmentor, DeepLab v2 on the device, dense CRF inline vs in N worker
                   processes: identical predictions; device = CPU logits (rtol 1e-3, atol
                   1e-4 x max); images/s ratio
sync_bn_nccl       ``torchrun --nproc_per_node=1``, TrainGETAM with ``sync_bn=True`` and
                   ``amp='auto'``: NCCL process group, DDP, SyncBatchNorm on CUDA (plain
                   BatchNorm and gloo on the CPU); finite losses
pinned_memory      the quickstart's DataLoader with ``pin_memory=True`` vs without, batches to
                   the GPU with ``non_blocking``: pinned, equal batches, images/s (no stage
                   offers pinned loading yet: this measures what it would give)
flops              SmallResNet / ResNet-50 forward FLOP/s vs a large float32 matmul
data_vs_model      quickstart classifier: data-loading images/s vs model images/s, and the
                   framework's step time vs a plain loop
=================  ============================================================================
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def _sync(ctx) -> None:
    if ctx.cuda:
        import torch
        torch.cuda.synchronize()


def _rel_atol(ref, fraction: float) -> float:
    """``fraction`` of the largest magnitude of ``ref`` (an absolute tolerance for values
    without a natural scale)."""
    import torch
    return fraction * float(torch.as_tensor(ref).abs().max()) if torch.as_tensor(ref).numel() \
        else fraction


def _cpu(x):
    return x.detach().float().cpu()


# ----------------------------------------------------------------------------- EDAM CMA
def edam_cma(ctx, f) -> None:
    import torch
    import edam_cma_memory
    from gpu_check_probe import dropout_off, exact_fp32
    from wsss_edam.models.collaborative_attention import CollaborativeMultiAttention

    classes, d, size = (4, 64, 6) if ctx.small else (20, 512, 12)
    torch.manual_seed(0)
    cma = CollaborativeMultiAttention(d, classes, attn_dropout=0.1).train()
    feat = torch.randn(4, d, size, size)
    masks = torch.rand(4, classes, size, size)

    # 1. a fused SDPA kernel only (flash / memory-efficient: an error if neither applies),
    #    forward + backward: on CUDA with the reference's attention dropout, under autocast
    #    (bf16 where the GPU has it, as amp='auto') and in float32; on the CPU without
    #    dropout (its fused kernel has none), to run the same code
    dropout = 0.1 if ctx.cuda else 0.0
    half = torch.bfloat16 if not ctx.cuda or torch.cuda.is_bf16_supported() else torch.float16
    for dtype in (half, torch.float32):
        what = f'fused SDPA only, attention dropout {dropout}, {str(dtype)[6:]}'
        logits, grad = fused_sdpa_step(cma, feat, masks, ctx.device, dtype, dropout)
        f.finite(f'{what}: logits', logits.flatten().tolist())
        f.finite(f'{what}: feature grads', grad.flatten().tolist())
    f.details['fused_sdpa'] = f'ran with attention dropout {dropout} ({str(half)[6:]}, float32)'

    # 2. float32, dropout off: SDPA = explicit on the device, device = CPU
    def run(model, device, attention):
        net = dropout_off(copy.deepcopy(model)).to(device)
        net.attention = attention
        x = feat.to(device).requires_grad_()
        with exact_fp32():
            out = net(x, masks.to(device))
            out.square().mean().backward()
        return _cpu(out), _cpu(x.grad)

    ref_out, ref_grad = run(cma, 'cpu', 'sdpa')
    for attention in ('sdpa', 'explicit'):
        out, grad = run(cma, ctx.device, attention)
        where = f'{attention} on {ctx.device} vs sdpa on cpu, fp32, dropout off'
        f.close(f'CMA logits, {where}', out, ref_out, rtol=1e-4, atol=_rel_atol(ref_out, 1e-5))
        f.close(f'CMA feature grads, {where}', grad, ref_grad, rtol=1e-3,
                atol=_rel_atol(ref_grad, 1e-4))

    # 3. peak memory, SDPA vs explicit, at the reference's size (each in a fresh process)
    args = SimpleNamespace(pairs=1, size=8 if ctx.small else 46, classes=classes if ctx.small
                           else 20, in_channels=64 if ctx.small else 4096, threads=ctx.threads,
                           repeats=1, device=ctx.device,
                           bf16=ctx.cuda and torch.cuda.is_bf16_supported())
    rows = {a: edam_cma_memory.run_variant(args, a, 0.1) for a in ('sdpa', 'explicit')}
    f.details['memory'] = dict(config=vars(args), rows=rows)
    errors = {a: r['error'] for a, r in rows.items() if 'error' in r}
    if f.require(not errors, f'CMA memory step failed: {errors}'):
        mb = {a: r['peak_bytes'] / 2 ** 20 / args.pairs for a, r in rows.items()}
        ratio = mb['sdpa'] / mb['explicit']
        f.details['memory']['peak_mb_per_pair'] = mb
        f.details['memory']['ratio_sdpa_explicit'] = ratio
        f.row('edam/cma_peak_memory_sdpa_vs_explicit',
              f"explicit {mb['explicit']:.0f} MB, SDPA {mb['sdpa']:.0f} MB per pair: "
              f"**{ratio:.3f}** ({args.size} x {args.size} tokens per image, D "
              f"{args.in_channels}, {args.classes} classes, attention dropout 0.1"
              f"{', bf16 autocast' if args.bf16 else ''}; one training step)")


def fused_sdpa_step(cma, feat, masks, device: str, dtype, attn_dropout: float):
    """Logits and feature gradients of one training-mode CMA step on ``device`` with SDPA
    restricted to the fused kernels (flash, memory-efficient), in ``dtype`` (autocast
    unless float32)."""
    import contextlib
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    net = copy.deepcopy(cma).to(device).train()
    net.attention = 'sdpa'
    net.encoders.attn_dropout = float(attn_dropout)
    x = feat.to(device).requires_grad_()
    cast = (contextlib.nullcontext() if dtype == torch.float32 else
            torch.autocast(torch.device(device).type, dtype=dtype))
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]), cast:
        logits = net(x, masks.to(device))
    logits.float().square().mean().backward()
    return _cpu(logits), _cpu(x.grad)


# ----------------------------------------------------------------------------- GETAM map
def getam_map(ctx, f) -> None:
    import torch
    import getam_map as bench
    from gpu_check_probe import exact_fp32
    from wsss_getam.getam_map import getam_maps

    if ctx.small:
        from wsss_getam.models.vit_backbone import TINY_BACKBONES
        backbone = {k: v for k, v in TINY_BACKBONES['vit'].items() if k != 'type'}
        args = SimpleNamespace(batch=2, size=64, classes=5, start_layer=2)
    else:
        backbone, args = bench.SMALL, SimpleNamespace(batch=4, size=256, classes=20,
                                                      start_layer=6)
    with exact_fp32():
        res = bench.run_model('small' if not ctx.small else 'tiny', backbone, args,
                              ctx.device, 1 if ctx.small else 3)
    f.details['timing'] = res
    f.require(res['max_abs_diff'] <= 1e-4 * res['max_value'] + 1e-7,
              f"GETAM map: batched vs reference loop differ by {res['max_abs_diff']:.3g} "
              f"(max value {res['max_value']:.3g}; tolerance 1e-4 x max)")
    f.details['comparisons'] = f.details.get('comparisons', []) + [dict(
        what='batched vs per-pair reference loop (same device)', max_abs_diff=res['max_abs_diff'],
        max_abs_value=res['max_value'], rtol=0.0, atol=1e-4 * res['max_value'])]

    # the vmapped backward vs the rounds on the device; the device vs the CPU
    model = bench.build_model(backbone, args.classes, 'cpu')
    img = torch.randn(2, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    labels = bench.bench_labels(2, args.classes)

    def maps(net, device, batched):
        net = net.to(device)
        with exact_fp32():
            return _cpu(getam_maps(net.cls_logits, net.backbone, img.to(device), labels,
                                   args.start_layer, grads_batched=batched))

    ref = maps(copy.deepcopy(model), 'cpu', False)
    dev = copy.deepcopy(model)
    rounds, vmapped = maps(dev, ctx.device, False), maps(dev, ctx.device, True)
    f.close(f'GETAM map, vmapped backward vs rounds on {ctx.device}', vmapped, rounds,
            rtol=0.0, atol=_rel_atol(rounds, 1e-4))
    f.close(f'GETAM map, {ctx.device} vs cpu (fp32)', rounds, ref, rtol=1e-3,
            atol=_rel_atol(ref, 1e-3))
    s = res['seconds']
    f.row('getam/map_batched_vs_reference',
          f"reference loop {s['reference']:.3f} s, batched {s['batched']:.3f} s (vmap "
          f"{s['batched_vmap']:.3f} s): **{res['ratio_maps']:.2f}** (vmap "
          f"{res['ratio_maps_vmap']:.2f}; {res['backbone']}, batch {args.batch} x {args.size} px, "
          f"{res['pairs']} (image, class) pairs, float32)")


# ----------------------------------------------------------------------------- CAMs
def cam(ctx, f) -> None:
    import torch
    import suite_rows
    from gpu_check_probe import exact_fp32
    from wsss_core.cams import CAM, DEFAULT_SCALES, multiscale_cams
    from wsss_core.components import register_core_components
    from wsss_core.models.cam_classifier import CAMClassifier

    params = (dict(images=8, size=32, batch=4, repeats=1) if ctx.small else
              dict(images=64, size=96, batch=16, repeats=3))
    with exact_fp32():
        rows, _ = suite_rows.cam(dict(params, threads=ctx.threads), ctx.device)
    torch.set_num_threads(ctx.threads)
    r = rows[0]
    res = r['details']
    f.details['bench'] = res
    f.require(res['max_abs_diff'] <= 1e-4 * res['max_value'] + 1e-7,
              f"batched vs loop CAMs differ by {res['max_abs_diff']:.3g} (max "
              f"{res['max_value']:.3g}; tolerance 1e-4 x max)")
    register_core_components()
    torch.manual_seed(0)
    model = CAMClassifier(backbone=dict(type='SmallResNet'), num_classes=6).eval()
    img = torch.randn(4, 3, params['size'], params['size'],
                      generator=torch.Generator().manual_seed(1))

    def cams(device):
        net = copy.deepcopy(model).to(device)
        with torch.inference_mode(), exact_fp32():
            return _cpu(multiscale_cams(CAM(), net, img.to(device), DEFAULT_SCALES))

    ref = cams('cpu')
    f.close(f'multi-scale CAMs, {ctx.device} vs cpu (fp32)', cams(ctx.device), ref, rtol=1e-3,
            atol=_rel_atol(ref, 1e-4))
    f.row(r['name'], f"loop {r['baseline']['value']:.1f}, batched {r['measured']['value']:.1f} "
                     f"img/s: **{r['ratio']:.2f}** ({r['note']})")


# ----------------------------------------------------------------------------- channels-last
def channels_last(ctx, f) -> None:
    import torch
    import channels_last as bench
    from gpu_check_probe import exact_fp32
    from wsss_core.pipeline.memory_format import to_channels_last
    from wsss_core.plugin_loader import load_plugins
    from wsss_core.registry import MODELS, build
    load_plugins(enabled=['deeplab'])

    models = {'small': (bench.MODELS['small'][0], (2, 48))} if ctx.small else \
        {k: v for k, v in bench.MODELS.items()}
    repeats = 1 if ctx.small else 5
    times = {}
    for name, (cfg, (batch, size)) in models.items():
        for train, b, s in ((True, batch, size), (False, 1, size if ctx.small else 321)):
            best = {}
            for nhwc in (False, True, False, True):
                t = bench.step_time(cfg, nhwc, train, b, s, ctx.device, repeats)
                best[nhwc] = min(best.get(nhwc, t), t)
            key = f"{name}_{'train' if train else 'infer'}"
            times[key] = dict(batch=b, size=s, nchw_s=best[False], nhwc_s=best[True],
                              ratio_nchw_nhwc=best[False] / best[True])
            f.row(f'channels_last/{key}',
                  f"NCHW {best[False] * 1e3:.1f} ms, NHWC {best[True] * 1e3:.1f} ms: "
                  f"**{best[False] / best[True]:.2f}** (NCHW / NHWC; batch {b} x {s} px, "
                  f"median of {repeats}, float32 with the device's default TF32)")
    f.details['times'] = times
    cfg = bench.MODELS['small'][0]
    torch.manual_seed(0)
    model = build(cfg, MODELS).eval()
    img = torch.randint(0, 256, (2, 3, 48, 48), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(1))

    def logits(device, nhwc):
        net = copy.deepcopy(model).to(device)
        if nhwc:
            net = to_channels_last(net, 'gpu_check')
        with torch.no_grad(), exact_fp32():
            x = net.data_preprocessor(dict(img=img.to(device)))['img']
            return _cpu(net.fused_logits(x))

    ref = logits('cpu', False)
    atol = _rel_atol(ref, 1e-4)
    f.close(f'DeepLab logits, NHWC vs NCHW on {ctx.device} (fp32)', logits(ctx.device, True),
            logits(ctx.device, False), rtol=1e-3, atol=atol)
    f.close(f'DeepLab logits, {ctx.device} vs cpu (fp32)', logits(ctx.device, False), ref,
            rtol=1e-3, atol=atol)


# ----------------------------------------------------------------------------- compile
def compile_step(ctx, f) -> None:
    import torch
    from mmengine.config import Config
    from classifier_train_overhead import stage_cfg
    from gpu_check_probe import probe_hook, read_probe
    from wsss_core.components import register_core_components
    from wsss_core.pipeline import Pipeline
    from wsss_core.pipeline.mixed_precision import default_amp_dtype
    register_core_components()
    warmup, iters, batch = (2, 3, 8) if ctx.small else (3, 10, 64)
    cfg = stage_cfg(iters, warmup, batch, image_size=32 if ctx.small else None)
    stage = cfg['stages'][0]
    stage['custom_hooks'] = [probe_hook(compare=False)]   # not the timing bench's hook
    stage.update(amp='auto', log_interval=1)
    runs = {}
    for arm in ('eager', 'compiled'):
        arm_cfg = copy.deepcopy(cfg)
        if arm == 'compiled':
            arm_cfg['stages'][0]['compile'] = True
        work = ctx.work_dir(f'compile_{arm}')
        Pipeline(Config(arm_cfg), work, device=ctx.device, progress=False).run()
        probe = read_probe(work / stage['name'])
        steps = probe['iterations']
        f.finite(f'{arm}: losses', [v for s in steps for v in s['losses'].values()])
        t = [s['t'] for s in steps]
        runs[arm] = dict(s_per_iter=(t[-1] - t[warmup - 1]) / (len(t) - warmup),
                         first_iters_s=t[warmup - 1] - probe['train_started'],
                         first_loss=steps[0]['losses']['loss'], iterations=len(steps),
                         optim_wrapper=probe['optim_wrapper'])
    amp = ctx.cuda
    f.close(f"first-iteration loss, compiled vs eager ({default_amp_dtype() if amp else 'fp32'})",
            runs['compiled']['first_loss'], runs['eager']['first_loss'],
            rtol=2e-2 if amp else 1e-3, atol=1e-5)
    ratio = runs['eager']['s_per_iter'] / runs['compiled']['s_per_iter']
    extra = runs['compiled']['first_iters_s'] - runs['eager']['first_iters_s']
    f.details.update(runs=runs, ratio_eager_compiled=ratio, compile_extra_s=extra,
                     torch=torch.__version__)
    f.row('compile/quickstart_classifier',
          f"eager {runs['eager']['s_per_iter'] * 1e3:.1f}, compiled "
          f"{runs['compiled']['s_per_iter'] * 1e3:.1f} ms/iter: **{ratio:.2f}** (eager / "
          f"compiled; batch {batch}, {iters} iterations after {warmup}, amp='auto'; the "
          f"compilation adds {extra:.0f} s to the first iterations)")


# ----------------------------------------------------------------------------- CRF pipeline
def crf_pipeline(ctx, f) -> None:
    import torch
    from mmengine.config import Config
    import crf_pipeline as bench
    from deeplab_crf_workers import write_inputs
    from gpu_check_probe import exact_fp32
    from wsss_core.plugin_loader import load_plugins
    from wsss_core.registry import MODELS, build
    load_plugins(enabled=['deeplab'])

    model_name = 'small' if ctx.small else 'r50'
    images = 2 if ctx.small else 12
    workers = 1 if ctx.small else max(1, min(6, (os.cpu_count() or 2) - 2))
    root = ctx.work_dir('crf_pipeline')
    write_inputs(root / 'data', images)
    bench.write_checkpoint_stage(root / 'work', model_name)
    cfg = Config(dict(data=dict(type='VOCLayoutDataset', data_root=str(root / 'data'),
                                num_classes=bench.LABELS - 1, img_suffix='.jpg')))
    inline = bench.timed_run(cfg, root / 'work', 'inline', ctx.device, 0)
    piped = bench.timed_run(cfg, root / 'work', 'pipelined', ctx.device, workers)
    same = len(inline['pngs']) == images and inline['pngs'] == piped['pngs']
    f.require(same, 'predictions of the pipelined run differ from the inline run')
    rate = dict(inline=images / inline['wall'], pipelined=images / piped['wall'])
    ratio = rate['pipelined'] / rate['inline']
    f.details.update(model=model_name, images=images, crf_workers=workers, images_per_s=rate,
                     ratio=ratio, identical=same, miou=inline['miou'])

    torch.manual_seed(0)
    net = build(dict(bench.MODELS[model_name], num_classes=bench.LABELS), MODELS).eval()
    img = torch.randint(0, 256, (1, 3, 97, 129), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(1))

    def logits(device):
        m = copy.deepcopy(net).to(device)
        with torch.no_grad(), exact_fp32():
            return _cpu(m.fused_logits(m.data_preprocessor(dict(img=img.to(device)))['img']))

    ref = logits('cpu')
    f.close(f'DeepLab v2 {model_name} logits, {ctx.device} vs cpu (fp32)', logits(ctx.device),
            ref, rtol=1e-3, atol=_rel_atol(ref, 1e-4))
    f.row(f'crf/pipelined_{workers}_workers_vs_inline',
          f"inline {rate['inline']:.2f}, pipelined {rate['pipelined']:.2f} img/s: "
          f"**{ratio:.2f}** (TestSegmentor, DeepLab v2 {model_name} on {ctx.device}, "
          f"{images} images 500 x 375, deeplab CRF preset in {workers} worker "
          f"process{'es' if workers > 1 else ''}, "
          f"pool start-up included, identical predictions: {same})")


# ----------------------------------------------------------------------------- sync_bn + NCCL
def sync_bn_nccl(ctx, f) -> None:
    from gpu_check_probe import probe_hook, read_probe
    from gpu_check_stages import getam_cfg, with_check_options
    from wsss_core.testing.distributed import free_port

    cfg = with_check_options(getam_cfg(), ['getam'], ctx, compare=False)
    stage = cfg['stages'][0]
    stage.update(sync_bn=True)
    stage['custom_hooks'] = [probe_hook(compare=False)]
    cfg.update(plugins=['deeplab', 'getam'],
               custom_imports=dict(imports=['gpu_check_probe'], allow_failed_imports=False))
    root = ctx.work_dir('sync_bn_nccl')
    path, work = root / 'getam_sync_bn.py', root / 'work'
    from mmengine.config import Config
    Config(cfg).dump(str(path))
    env = dict(os.environ, MASTER_ADDR='127.0.0.1', OMP_NUM_THREADS=str(ctx.threads),
               PYTHONPATH=os.pathsep.join([str(BENCH), os.environ.get('PYTHONPATH', '')]))
    env.pop('WSSS_SHARD', None)
    if not ctx.cuda:
        env['CUDA_VISIBLE_DEVICES'] = ''
    elif ':' in ctx.device:
        env['CUDA_VISIBLE_DEVICES'] = ctx.device.split(':', 1)[1]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=1',
           f'--master_port={free_port()}', '-m', 'wsss_core.cli', str(path), '--launcher',
           'pytorch', '--work-dir', str(work), '--no-progress']
    timeout = max(30.0, ctx.remaining() - 5)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(root))
    log = proc.stdout + proc.stderr
    (root / 'torchrun.log').write_text(log)
    f.details['returncode'] = proc.returncode
    if not f.require(proc.returncode == 0, f'torchrun exited with {proc.returncode}: '
                                           f'{log.strip().splitlines()[-1:] or ["?"]}'):
        f.details['log_tail'] = log[-4000:]
        return
    probe = read_probe(work / 'getam')
    if not f.require(probe is not None, 'the probe recorded nothing'):
        return
    steps = probe['iterations']
    f.finite('losses', [v for s in steps for v in s['losses'].values()])
    model, dist = probe.get('model', {}), probe.get('distributed') or {}
    f.details.update(model=model, distributed=dist, optim_wrapper=probe['optim_wrapper'],
                     iterations=len(steps), phases=sorted({str(s['phase']) for s in steps}))
    f.require('DDP' in model.get('wrapper', '') or 'Distributed' in model.get('wrapper', ''),
              f"the model is not wrapped in DDP ({model.get('wrapper')})")
    if ctx.cuda:
        f.require(dist.get('backend') == 'nccl', f"process group backend {dist.get('backend')}, "
                                                 'expected nccl')
        f.require(model.get('batch_norm') == ['SyncBatchNorm'],
                  f"BatchNorm classes {model.get('batch_norm')}, expected only SyncBatchNorm")
        f.require(probe['optim_wrapper'].get('type') == 'AmpOptimWrapper',
                  f"optimiser wrapper {probe['optim_wrapper']}, expected AmpOptimWrapper")
        f.details['note'] = ('one GPU: SyncBatchNorm with world size 1 normalises with its own '
                             'batch (no cross-GPU reduction); the conversion, NCCL and DDP ran')
    else:
        f.require(dist.get('backend') == 'gloo', f"backend {dist.get('backend')}, expected gloo")
        f.require('SyncBatchNorm' not in model.get('batch_norm', []),
                  'SyncBatchNorm on the CPU (torch has no CPU forward for it)')
        f.require('SyncBatchNorm needs a GPU' in log, 'no warning that sync_bn was ignored')


# ----------------------------------------------------------------------------- pinned memory
def pinned_memory(ctx, f) -> None:
    import time
    import torch
    from mmengine.dataset import DefaultSampler, default_collate
    from torch.utils.data import DataLoader
    from classifier_train_overhead import build_stage_objects, stage_cfg
    from wsss_core.components import register_core_components
    register_core_components()
    batch, n = (8, 2) if ctx.small else (64, 8)
    cfg = stage_cfg(n, 1, batch, image_size=32 if ctx.small else None)
    cfg['stages'][0].update(custom_hooks=[], pipeline=[   # no random flip / crop
        dict(type='PackInputs', keys=('img', 'labels'))])
    stage, train_set, model = build_stage_objects(cfg, str(ctx.work_dir('pinned_memory')),
                                                  ctx.device)
    rates, first = {}, {}
    for pin in (False, True, False, True):
        loader = DataLoader(train_set, batch_size=batch, num_workers=0, pin_memory=pin,
                            sampler=DefaultSampler(train_set, shuffle=False),
                            collate_fn=default_collate)
        _sync(ctx)
        t0, count = time.perf_counter(), 0
        for i, data in enumerate(loader):
            if i == 0 and pin and ctx.cuda:
                f.require(data['img'].is_pinned(), 'pin_memory=True: the batch is not pinned')
            img = data['img'].to(ctx.device, non_blocking=True)
            out = model.data_preprocessor(dict(data, img=img), True)
            if i == 0 and pin not in first:
                first[pin] = _cpu(out['img'])
            count += img.shape[0]
        _sync(ctx)
        rates[pin] = max(rates.get(pin, 0.0), count / (time.perf_counter() - t0))
    f.close('first batch, pinned vs pageable loading', first[True], first[False], rtol=0.0,
            atol=0.0)
    ratio = rates[True] / rates[False]
    f.details.update(images_per_s=dict(pageable=rates[False], pinned=rates[True]),
                     offered_by_stages=False)
    if not ctx.cuda:
        f.details['note'] = 'on the CPU pin_memory does nothing: this only runs the code'
        return
    f.row('data/pinned_vs_pageable',
          f"pageable {rates[False]:.0f}, pinned {rates[True]:.0f} img/s: **{ratio:.2f}** "
          f"(quickstart loader + preprocessor to the GPU, batch {batch}, no loader workers; "
          'no stage sets pin_memory yet)')


# ----------------------------------------------------------------------------- suite rows
def flops(ctx, f) -> None:
    import torch
    import suite_rows
    params = (dict(models=['small_resnet'], repeats=1, matmul_n=256, batch=4, size=32)
              if ctx.small else dict(models=['small_resnet', 'resnet50'], repeats=3,
                                     matmul_n=8192 if ctx.cuda else 2048, batch=None,
                                     size=None))
    rows, _ = suite_rows.flops(dict(params, threads=ctx.threads), ctx.device)
    tf32 = dict(matmul=torch.backends.cuda.matmul.allow_tf32,
                cudnn=torch.backends.cudnn.allow_tf32)
    f.details.update(params=params, tf32=tf32, rows=[{k: r[k] for k in ('name', 'ratio', 'note')}
                                                     for r in rows])
    for r in rows:
        f.require(r['ratio'] > 0, f"{r['name']}: no FLOP/s")
        f.row(r['name'], f"{r['measured']['value']:.0f} of {r['baseline']['value']:.0f} GFLOP/s "
                         f"(matmul {params['matmul_n']}^2 float32): **{r['ratio']:.2f}** "
                         f"({r['note']}; TF32 matmul {tf32['matmul']}, cuDNN {tf32['cudnn']})")


def data_vs_model(ctx, f) -> None:
    import suite_rows
    params = (dict(iters=2, warmup=1, batch_size=8, rounds=1, image_size=32) if ctx.small else
              dict(iters=10, warmup=3, batch_size=64, rounds=1, image_size=None))
    rows, _ = suite_rows.classifier_overhead(dict(params, threads=ctx.threads), ctx.device)
    f.details['rows'] = [{k: r[k] for k in ('name', 'ratio', 'target', 'target_met', 'note')}
                         for r in rows]
    for r in rows:
        f.require(r['ratio'] > 0, f"{r['name']}: no figure")
        f.row(r['name'], f"{r['baseline']['label']} {r['baseline']['value']:.4g}, "
                         f"{r['measured']['label']} {r['measured']['value']:.4g} "
                         f"{r['measured']['unit']}: **{r['ratio']:.3f}** ({r['note']})")


#: (name, what, function), in the order they run: the longest and least predictable
#: (the CRF pool, a cold inductor compilation) last, so that the time limit cuts those first
PATH_CHECKS = [
    ('edam_cma', "EDAM CMA: fused SDPA with dropout 0.1, fp32 vs CPU, peak memory at 46 x 46",
     edam_cma),
    ('getam_map', 'GETAM map: batched and vmapped backward vs the reference loop, vs CPU',
     getam_map),
    ('cam', 'batched multi-scale CAMs vs the loop; vs CPU', cam),
    ('channels_last', 'DeepLab v2 NCHW vs NHWC steps; logits vs NCHW and CPU', channels_last),
    ('sync_bn_nccl', 'torchrun, 1 process: TrainGETAM with sync_bn=True (NCCL, DDP)',
     sync_bn_nccl),
    ('flops', 'SmallResNet / ResNet-50 forward FLOP/s vs the float32 matmul', flops),
    ('pinned_memory', 'DataLoader pin_memory=True vs pageable, batches to the GPU',
     pinned_memory),
    ('data_vs_model', 'quickstart classifier: data vs model images/s, framework overhead',
     data_vs_model),
    ('crf_pipeline', 'TestSegmentor: network on the device, CRF inline vs N workers',
     crf_pipeline),
    ('compile', "quickstart classifier, compile=True vs eager (amp='auto')", compile_step),
]
