"""Does a stand-in leave the chance loss on the ShapeCorpus? Short pretraining probes (issue 22).

Trains a PretrainClassifier (backbone, mean of the tokens / global average pooling, linear
head) on batches of the cached 64 px ShapeCorpus (96 classes; chance loss ln 96 = 4.564)
with AdamW, a linear warm-up over ``--warmup`` steps then a constant rate, and prints the
running mean (0.9 decay) of the cross-entropy every 25 steps, the gradient norm and the
elapsed time.  Variants (``--variant``):

* ``smallresnet``: the core's SmallResNet (the reference point that learns);
* ``vit``, ``vit_d1``, ``vit_ls``: the ViT-Tiny-sized plain ViT of GETAM's stand-in
  (12 blocks; 1 block; LayerScale init 1e-5);
* ``hybrid``, ``hybrid_d1``, ``hybrid_ls``: the same on the small ResNet stem (the hybrid;
  GroupNorm of 8 groups; ``hybrid_ls`` is what ``getam::synthetic_hybrid_pretrained.py``
  pretrained until session 11); ``hybrid_ls_gn1``: with the stem's GroupNorm in one group
  (what it pretrains now);
* ``timm_vit16``, ``timm_vit8``: timm's ViT-Tiny itself, outside this project's wrapper, with
  16 x 16 patches (16 tokens at 64 px), or 8 x 8 patches (64 tokens) and 6 blocks;
* ``stem_gn8``, ``stem_gn1``: the hybrid's ResNet stem alone (global average pooling of its
  stride-16 map), GroupNorm in 8 groups or in one.  At 8 groups the bottlenecks' 8-, 16- and
  32-channel layers normalise 1-4 channels per group, close to instance normalisation, which
  removes each image's per-channel level (the statistic a texture class is told by);
* ``--distill STAGE_DIR``: adds to the cross-entropy a token-level feature regression onto a
  finished Pretrain stage's backbone (its ``model.pth``; the teacher's last feature map
  average-pooled to the token grid, layer-normalised, predicted from each token through a
  linear map): ``L = CE + mean_tokens ||W t_i - LN(f_i)||^2 / D_teacher``.

    python bench/vit_learning_probe.py --variant vit --lr 1e-3 --steps 200
    python bench/vit_learning_probe.py --variant vit --distill work_dirs/x/edam_pretrain

Not a timed benchmark: the figure is whether and when the loss leaves 4.56.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

_VIT = dict(type='GETAMViT', model_name='vit_tiny_patch16_224', img_size=64, embed_dim=192,
            depth=12, num_heads=3)
_HYBRID = dict(_VIT, model_name='vit_base_r50_s16_384',
               hybrid_resnet=dict(layers=(1, 1, 1), channels=(32, 64, 128), stem_chs=32,
                                  num_groups=8))
class HybridStem(torch.nn.Module):
    """The hybrid ViT's ResNet stem alone (its stride-16 feature map), for the probe."""

    def __init__(self, **stem):
        super().__init__()
        from wsss_getam.models.vit_backbone import _hybrid_resnetv2
        self.net = _hybrid_resnetv2(**stem)
        self.out_channels = self.net.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TimmViT(torch.nn.Module):
    """timm's own ViT-Tiny (no wrapper of this project) at 64 px with ``patch_size`` and
    ``depth``: its tokens, class token first, for the probe."""

    num_prefix_tokens = 1

    def __init__(self, patch_size: int = 16, depth: int = 12):
        super().__init__()
        import timm
        self.vit = timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=64,
                                     patch_size=patch_size, depth=depth, num_classes=0)
        self.embed_dim = self.vit.embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit.forward_features(x)


VARIANTS = {
    'smallresnet': dict(type='SmallResNet'),
    'vit': _VIT, 'vit_d1': dict(_VIT, depth=1), 'vit_ls': dict(_VIT, init_values=1e-5),
    'hybrid': _HYBRID, 'hybrid_d1': dict(_HYBRID, depth=1),
    'hybrid_ls': dict(_HYBRID, init_values=1e-5),
    'hybrid_ls_gn1': dict(_HYBRID, init_values=1e-5,
                          hybrid_resnet=dict(_HYBRID['hybrid_resnet'], num_groups=1)),
    'stem_gn8': dict(type=HybridStem, **_HYBRID['hybrid_resnet']),
    'stem_gn1': dict(type=HybridStem, **dict(_HYBRID['hybrid_resnet'], num_groups=1)),
    'timm_vit16': dict(type=TimmViT, patch_size=16),
    'timm_vit8': dict(type=TimmViT, patch_size=8, depth=6),
}


def load_teacher(stage_dir: Path):
    """The backbone of a finished Pretrain stage, from its manifest's backbone config and
    its ``model.pth`` (the whole pretraining classifier), frozen."""
    from wsss_core.registry import MODELS
    manifest = json.loads((stage_dir / 'manifest.json').read_text())
    backbone_cfg = manifest['artifacts']['backbone']
    state = torch.load(stage_dir / 'model.pth', map_location='cpu', weights_only=True)
    teacher = MODELS.build(backbone_cfg)
    teacher.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()
                             if k.startswith('backbone.')})
    return teacher.eval().requires_grad_(False)


def last_map(out) -> torch.Tensor:
    return out[-1] if isinstance(out, (list, tuple)) else out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--variant', choices=sorted(VARIANTS), default='vit')
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--steps', type=int, default=200)
    p.add_argument('--warmup', type=int, default=50)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--distill', type=Path, default=None, metavar='STAGE_DIR')
    args = p.parse_args(argv)
    if args.distill is not None and VARIANTS[args.variant]['type'] != 'GETAMViT':
        p.error('--distill regresses ViT tokens: use a vit* or hybrid* variant')

    from wsss_core.datasets.shape_corpus_dataset import ShapeCorpus
    from wsss_core.plugin_loader import load_plugins
    from wsss_core.registry import MODELS
    load_plugins()
    torch.manual_seed(0)
    corpus = ShapeCorpus('train', generator=dict(image_size=64), progress=False)
    images, labels = corpus.images, corpus.labels_array
    net = MODELS.build(dict(type='PretrainClassifier', backbone=VARIANTS[args.variant],
                            num_classes=corpus.num_classes))
    params = list(net.parameters())
    teacher = adapter = None
    if args.distill is not None:
        teacher = load_teacher(args.distill)
        with torch.no_grad():
            width = last_map(teacher(torch.zeros(1, 3, 64, 64))).shape[1]
        adapter = torch.nn.Linear(net.head.in_features, width)
        params += list(adapter.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    rng, start, running = np.random.default_rng(0), time.time(), None
    print(f'{args.variant}: {sum(p.numel() for p in net.backbone.parameters()) / 1e6:.2f} M '
          f'parameters, {len(labels)} corpus images, lr {args.lr:g}, warm-up {args.warmup}'
          + (f', distilled from {args.distill}' if teacher is not None else ''))
    for step in range(args.steps):
        idx = np.sort(rng.choice(len(labels), args.batch, replace=False))
        img = torch.from_numpy(np.array(images[idx])).permute(0, 3, 1, 2)
        x = net.data_preprocessor.normalize(img)
        y = torch.from_numpy(labels[idx]).long()
        for group in opt.param_groups:
            group['lr'] = args.lr * min(1.0, (step + 1) / max(1, args.warmup))
        out = net.backbone(x)
        ce = F.cross_entropy(net.head(_pooled(out, net.num_prefix_tokens)), y)
        loss = ce
        if teacher is not None:
            loss = ce + _feature_regression(out, teacher(x), adapter, net.num_prefix_tokens)
        opt.zero_grad()
        loss.backward()
        grad = torch.nn.utils.clip_grad_norm_(params, float('inf'))
        opt.step()
        running = ce.item() if running is None else 0.9 * running + 0.1 * ce.item()
        if step % 25 == 0 or step == args.steps - 1:
            print(f'step {step:4d}  cross-entropy {running:.3f}  loss {loss.item():.3f}  '
                  f'grad norm {grad.item():.2f}  {time.time() - start:.0f} s', flush=True)
    return 0


def _pooled(out, num_prefix: int) -> torch.Tensor:
    from wsss_core.models.pretrain_classifier import pooled_features
    return pooled_features(out, num_prefix)


def _feature_regression(out, teacher_out, adapter, num_prefix: int) -> torch.Tensor:
    """Mean over tokens of ||W t_i - LN(f_i)||^2 / D (``f`` the teacher map pooled to the
    token grid)."""
    tokens = out['tokens'][:, num_prefix:]
    target = F.adaptive_avg_pool2d(last_map(teacher_out), tuple(out['grid']))
    target = target.flatten(2).transpose(1, 2)
    target = F.layer_norm(target, target.shape[-1:])
    return F.mse_loss(adapter(tokens), target)


if __name__ == '__main__':
    raise SystemExit(main())
