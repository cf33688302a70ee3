"""gpu_check: every plugin's training stages for a few iterations on the device under test.

Each ``train_<plugin>`` check runs a tiny pipeline of that plugin (SyntheticShapes, 48 px; the
stages and models of the plugin's synthetic config, shrunk as its tests shrink them) with
the Pipeline on the device, every training stage with ``amp='auto'`` (mixed precision on
CUDA: bfloat16 where the GPU has it, else float16 with dynamic loss scaling), channels-last
where the stage or model offers it, and the :class:`~gpu_check_probe.GPUCheckProbe` hook.
Then, per training stage:

* every loss of every iteration is finite;
* on CUDA the optimiser wrapper is mmengine's ``AmpOptimWrapper`` in the expected dtype (on
  the CPU ``'auto'`` means plain float32: an ``OptimWrapper``);
* the float32 losses of the first batch on the device equal the CPU's on the same weights
  and batch: ``|device - cpu| <= atol + rtol |cpu|`` per loss term (:data:`FP32`; GETAM's
  joint phase :data:`JOINT_PHASE`, whose online labels threshold maps);
* the manifest's ``peak_memory_mb`` has the CUDA allocator's peak (``cuda``) on a GPU;
* a channels-last stage's 4-D parameters are all stored NHWC;
* a second pass reruns the training stages with ``amp_dtype='float16'`` and checks the same
  (on CUDA: finite losses, ``AmpOptimWrapper`` in float16 with a loss scale; on the CPU
  that is float32 again);
* on the CPU (``--device cpu``, which only exercises the script) the probe also runs the
  first batch under CPU autocast in bfloat16 and float16, forward and backward: dtype
  mistakes of the mixed-precision path show there without a GPU.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Dict, Optional, Sequence

__all__ = ['FP32', 'JOINT_PHASE', 'STAGE_CHECKS', 'run_training_check']

#: CPU vs device float32 loss terms (TF32 off): |d - c| <= atol + rtol |c|
FP32 = dict(rtol=1e-3, atol=1e-5)
#: GETAM's joint phase: the online labels threshold PAMR-refined maps, so a pixel next to a
#: threshold may flip between devices and move the segmentation losses a little
JOINT_PHASE = dict(rtol=5e-2, atol=1e-3)

SMALL_RESNET = dict(type='SmallResNet', widths=(8, 8, 16, 16))
NORM = dict(type='NormalizeImages', mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))
PACK = [dict(type='PackInputs', keys=('img', 'labels'))]


def tiny_data(image_size: int = 48, num_train: int = 16, num_val: int = 8) -> dict:
    return dict(type='SyntheticShapes', progress=False,
                generator=dict(image_size=image_size, num_classes=3, seed=0,
                               num_train=num_train, num_val=num_val))


# ----------------------------------------------------------------------------- the pipelines
def core_cfg() -> dict:
    """The core's TrainClassifier (CAMClassifier, channels-last model) with validation."""
    from wsss_core.testing import tiny_classify_stage
    stage = tiny_classify_stage(val_split='val', max_epochs=2)
    stage['model'] = dict(stage['model'], channels_last=True, data_preprocessor=NORM)
    return dict(seed=0, data=tiny_data(), stages=[stage])


def deeplab_cfg() -> dict:
    """TrainSegmentor on the ground truth (DeepLab v2, the tiny reference-stride ResNet, MSC)
    and TestSegmentor, both channels-last."""
    return dict(seed=0, data=tiny_data(), stages=[
        dict(type='TrainSegmentor', name='deeplab', labels=None, max_iters=3, batch_size=4,
             crop_size=48, log_interval=1, checkpoint_interval=3, channels_last=True,
             model=dict(type='DeepLabV2', backbone=dict(type='DeepLabResNet', depth='tiny'))),
        dict(type='TestSegmentor', name='test', checkpoint='deeplab', split='val',
             channels_last=True, max_samples=4)])


def _oaa_head(backbone: dict) -> dict:
    return dict(backbone=dict(backbone), head_channels=16, channels_last=True,
                data_preprocessor=NORM)


def oaa_cfg() -> dict:
    """OAA: the classifier with online accumulation (the reference VGG16 layout, widths / 16),
    then the integral attention model (OAA+) on the accumulated maps."""
    head = _oaa_head(dict(type='VGG16OAA', width_mult=1 / 16))
    return dict(seed=0, data=tiny_data(), stages=[
        dict(type='TrainClassifier', name='oaa_classify', max_epochs=2, batch_size=8,
             val_split=None, log_interval=1, model=dict(type='OAAClassifier', **head),
             pipeline=PACK, custom_hooks=[dict(type='OAAAccumulationHook', start_epoch=1,
                                               filter='topk')]),
        dict(type='TrainIntegralAttention', name='oaa_iam', targets='oaa_classify',
             max_epochs=1, batch_size=8, log_interval=1,
             model=dict(type='IntegralAttentionModel', loss_form='pytorch', **head))])


def nsrom_cfg() -> dict:
    """NSROM: the GloRe classifier with accumulation, then OA-CAM (the caffe loss form)."""
    head = dict(_oaa_head(SMALL_RESNET), num_nodes=4)
    return dict(seed=0, data=tiny_data(), stages=[
        dict(type='TrainClassifier', name='nsrom_classify', max_epochs=2, batch_size=8,
             val_split=None, log_interval=1, model=dict(type='NSROMClassifier', **head),
             pipeline=PACK, custom_hooks=[dict(type='OAAAccumulationHook', filter=None,
                                               score_filter=0.1)]),
        dict(type='TrainIntegralAttention', name='nsrom_oacam', targets='nsrom_classify',
             max_epochs=1, batch_size=8, log_interval=1,
             model=dict(type='OACAMModel', loss_form='caffe', **head))])


def edam_cfg() -> dict:
    """EDAM: TrainPairClassifier (ResNet38 widths / 16) with the reference CMA, attention
    dropout 0.1 (the fused SDPA kernel with dropout on CUDA)."""
    model = dict(type='EDAMClassifier', data_preprocessor=NORM, cma=dict(attn_dropout=0.1),
                 backbone=dict(type='ResNet38', width_mult=1 / 16, final_relu=False,
                               frozen_stages=(), norm_eval=False))
    return dict(seed=0, data=tiny_data(), stages=[
        dict(type='TrainPairClassifier', name='edam_classify', model=model, passes=1,
             max_epochs=1, batch_size=4, val_split='val', warmup_steps=2, log_interval=1)])


def moana_cfg() -> dict:
    """MoANA's IRN route: the MoANA classifier, CAMs, IR labels, TrainIRN (MoANA backbone)."""
    def backbone(out_indices=None):
        return dict(type='WithMoANA', enabled=True, moana=dict(preset='wsss'),
                    backbone=dict(SMALL_RESNET, out_indices=out_indices))
    return dict(seed=0, data=tiny_data(num_train=24, num_val=8), stages=[
        dict(type='TrainClassifier', name='moana_classify', max_epochs=1, batch_size=8,
             val_split=None, log_interval=1, drop_last=True,
             model=dict(type='MoANAClassifier', backbone=backbone(), init='xavier',
                        loss='multilabel_soft_margin', cam_bias=False,
                        data_preprocessor=NORM)),
        dict(type='MakeCAMs', name='moana_cams', source='moana_classify', split='train',
             scales=(1.0, 0.5), flip=True),
        dict(type='RefineLabels', name='moana_ir_labels', cams='moana_cams', workers=0,
             refiners=[dict(type='IRLabels', fg_threshold=0.30, bg_threshold=0.05)]),
        dict(type='TrainIRN', name='moana_irn', labels='moana_ir_labels',
             backbone_from='moana_classify', crop=48, batch_size=4, max_epochs=1,
             log_interval=1,
             model=dict(type='InterPixelRelationNet', backbone=backbone((0, 1, 2, 3, 4)),
                        radius=4, data_preprocessor=NORM))])


def getam_cfg() -> dict:
    """TrainGETAM with a tiny ViT: the classification phase, then the joint phase (GETAM maps
    by autograd through the captured attentions, PAMR, online labels, the four losses)."""
    from wsss_getam.models.vit_backbone import TINY_BACKBONES
    model = dict(type='GETAMNet', features=16, test_sizes=(64,), data_preprocessor=NORM,
                 backbone=dict(TINY_BACKBONES['vit']),
                 joint=dict(start_layer=2, pamr=dict(num_iter=2, dilations=(1, 2))))
    return dict(seed=0, data=tiny_data(image_size=64), stages=[
        dict(type='TrainGETAM', name='getam', model=model, max_epochs=2, batch_size=4, crop=64,
             long_side=(56, 72), val_split=None, log_interval=1,
             optim_wrapper=dict(type='OptimWrapper',
                                optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4)))])


#: check name -> (what it covers, plugins to load, config builder, training stages,
#: stages expected in channels-last)
STAGE_CHECKS: Dict[str, tuple] = {
    'train_core': ('core TrainClassifier (CAMClassifier, channels-last) + validation',
                   ['deeplab'], core_cfg, ['classify'], ['classify']),
    'train_deeplab': ('DeepLab TrainSegmentor + TestSegmentor, channels_last=True',
                      ['deeplab'], deeplab_cfg, ['deeplab'], ['deeplab']),
    'train_oaa': ('OAA classifier with accumulation + TrainIntegralAttention',
                  ['deeplab', 'oaa'], oaa_cfg, ['oaa_classify', 'oaa_iam'],
                  ['oaa_classify', 'oaa_iam']),
    'train_nsrom': ('NSROM classifier + OA-CAM (TrainIntegralAttention)',
                    ['deeplab', 'oaa', 'nsrom'], nsrom_cfg, ['nsrom_classify', 'nsrom_oacam'],
                    ['nsrom_classify', 'nsrom_oacam']),
    'train_edam': ('EDAM TrainPairClassifier, CMA with attention dropout 0.1',
                   ['deeplab', 'edam'], edam_cfg, ['edam_classify'], []),
    'train_moana': ('MoANA classifier + core TrainIRN on its IR labels',
                    ['deeplab', 'moana'], moana_cfg, ['moana_classify', 'moana_irn'], []),
    'train_getam': ('TrainGETAM, classification then joint phase (GETAM map, PAMR)',
                    ['deeplab', 'getam'], getam_cfg, ['getam'], []),
}


# ----------------------------------------------------------------------------- running
def with_check_options(cfg: dict, trained: Sequence[str], ctx, amp_dtype: Optional[str] = None,
                       compare: bool = True) -> dict:
    """``cfg`` with ``amp='auto'`` (and ``amp_dtype``), ``log_interval=1`` and the probe on
    every stage named in ``trained``."""
    from gpu_check_probe import probe_hook
    cfg = copy.deepcopy(cfg)
    autocast = () if ctx.cuda else ('bfloat16', 'float16')
    for stage in cfg['stages']:
        if stage['name'] not in trained:
            continue
        stage['amp'] = 'auto'
        if amp_dtype:
            stage['amp_dtype'] = amp_dtype
        stage['custom_hooks'] = list(stage.get('custom_hooks') or []) + [
            probe_hook(compare=compare, autocast_dtypes=autocast)]
    return cfg


def expected_amp_dtype(ctx) -> Optional[str]:
    """What ``amp='auto'`` must give here: None (float32) on the CPU, else the GPU's dtype."""
    if not ctx.cuda:
        return None
    from wsss_core.pipeline.mixed_precision import default_amp_dtype
    return default_amp_dtype()


def run_training_check(ctx, f, name: str) -> None:
    """Run check ``name`` of :data:`STAGE_CHECKS` (see the module docstring)."""
    from mmengine.config import Config

    from wsss_core.pipeline import Pipeline
    from wsss_core.plugin_loader import load_plugins
    what, plugins, build, trained, nhwc = STAGE_CHECKS[name]
    load_plugins(enabled=plugins)
    base = build()
    work = ctx.work_dir(name)
    results = Pipeline(Config(with_check_options(base, trained, ctx)), work, device=ctx.device,
                       progress=False).run()
    f.details['stages'] = {r.name: r.status for r in results}
    dtype = expected_amp_dtype(ctx)
    for stage in trained:
        judge_stage(ctx, f, work / stage, stage, dtype, stage in nhwc, 'amp_auto')
    # the training stages again with amp_dtype='float16' (on the CPU float32 all the same:
    # mmengine's AmpOptimWrapper needs CUDA; the pass runs the code, the CPU autocast probe
    # of the first pass covers float16 there)
    Pipeline(Config(with_check_options(base, trained, ctx, 'float16', compare=False)), work,
             only=trained, device=ctx.device, progress=False).run()
    for stage in trained:
        judge_stage(ctx, f, work / stage, stage, 'float16' if ctx.cuda else None,
                    stage in nhwc, 'amp_float16')


def judge_stage(ctx, f, stage_dir: Path, stage: str, amp_dtype: Optional[str], nhwc: bool,
                label: str) -> None:
    """Check one finished training stage from its probe record and manifest."""
    from gpu_check_probe import read_probe
    from wsss_core.pipeline.manifest import read_manifest
    probe = read_probe(stage_dir)
    key = f'{stage}/{label}'
    if not f.require(probe is not None, f'{key}: the probe recorded nothing'):
        return
    losses = [it['losses'] for it in probe['iterations']]
    f.require(len(losses) > 0, f'{key}: no training iteration ran')
    f.finite(f'{key} losses', [v for step in losses for v in step.values()])
    wrapper = probe.get('optim_wrapper', {})
    if amp_dtype is None:
        f.require(wrapper.get('type') == 'OptimWrapper',
                  f"{key}: amp='auto' on {ctx.device} gave {wrapper.get('type')}, expected a "
                  'float32 OptimWrapper')
    else:
        f.require(wrapper.get('type') == 'AmpOptimWrapper'
                  and wrapper.get('cast_dtype') == amp_dtype,
                  f'{key}: optimiser wrapper {wrapper}, expected AmpOptimWrapper in {amp_dtype}')
        if amp_dtype == 'float16':
            f.require(wrapper.get('loss_scale', 0) > 0, f'{key}: float16 without a loss scale')
    for rec in probe.get('compared', []):
        where = f"{key} iter {rec['iter']}" + (f" ({rec['phase']} phase)" if rec['phase'] else '')
        if 'error' in rec:
            f.problem(f'{where}: the CPU / device comparison failed: {rec["error"]}',
                      rec.get('traceback'))
            continue
        tol = JOINT_PHASE if rec['phase'] == 'joint' else FP32
        for term, ref in rec['reference'].items():
            f.close(f'{where} {term} (fp32, {ctx.device} vs cpu)', rec['device'].get(term),
                    ref, **tol)
    for rec in probe.get('autocast', []):
        where = f"{key} iter {rec['iter']} CPU autocast {rec['dtype']}"
        if 'error' in rec:
            f.problem(f'{where}: {rec["error"]}', rec.get('traceback'))
        else:
            f.finite(where, list(rec['losses'].values()))
    model = probe.get('model', {})
    if nhwc:
        f.require(model.get('nchw_only_4d', 1) == 0 and model.get('channels_last_4d', 0) > 0,
                  f'{key}: channels-last expected, 4-D parameters {model}')
    manifest = read_manifest(stage_dir) or {}
    peak = manifest.get('peak_memory_mb') or {}
    if ctx.cuda:
        f.require(peak.get('cuda', 0) > 0, f'{key}: the manifest has no CUDA peak memory '
                                           f'({peak})')
    f.details.setdefault(label, {})[stage] = dict(
        iterations=len(losses), first_losses=losses[0] if losses else None,
        last_losses=losses[-1] if losses else None, optim_wrapper=wrapper, model=model,
        distributed=probe.get('distributed'), peak_memory_mb=peak,
        duration_s=manifest.get('duration_s'),
        autocast=[{k: r.get(k) for k in ('dtype', 'losses', 'error')}
                  for r in probe.get('autocast', [])])
