"""The EDAM plugin's answer to ``wsss_conformance_examples()``: how the conformance suite
builds and exercises each component of :data:`~wsss_edam.plugin.COMPONENTS` (tiny configs,
generated CPU inputs, no weights)."""
from __future__ import annotations

from wsss_core.testing.conformance import ComponentExample
from wsss_core.testing.conformance import inputs as gen_inputs
from wsss_core.testing.tiny import TINY_GENERATOR

#: the plugin tests' tiny backbone and collaborative multi-attention
TINY_BACKBONE = dict(type='SmallResNet', widths=(8, 8, 16, 16))
TINY_CMA = dict(embed_dims=16, num_heads=2, ffn_dims=32)
TINY_EDAM = dict(num_classes=3, backbone=dict(TINY_BACKBONE), cma=dict(TINY_CMA))


def _tiny_edam():
    from wsss_core.registry import MODELS, build
    return build(dict(TINY_EDAM, type='EDAMClassifier'), MODELS)


def _da_mask_inputs(gen):
    """The core CAM-generator inputs with a tiny EDAMClassifier (whose DA masks DAMasks reads)."""
    return dict(gen_inputs.cam_generator_inputs(gen, 3), model=_tiny_edam())


def _tiny_shapes() -> dict:
    return dict(type='SyntheticShapes', generator=dict(TINY_GENERATOR), progress=False,
                workers=0)


def examples():
    return [
        # a batch of 2 images is one pair: rows 2p and 2p + 1 (what TrainPairClassifier feeds)
        ComponentExample('EDAMClassifier', dict(TINY_EDAM), kind='classifier',
                         roles=('cam_model', 'param_group_provider')),
        ComponentExample('DAMasks', inputs=_da_mask_inputs),
        ComponentExample('ImagePairs', lambda: dict(dataset=_tiny_shapes(), split='train',
                                                    passes=1, seed=0)),
        ComponentExample('PairEpochSampler', dict(dataset=list(range(5)), rank=0,
                                                  world_size=2)),
        ComponentExample('EDAMSaliencyFusion', dict()),
        ComponentExample('TrainPairClassifier',
                         dict(name='classify', model=dict(TINY_EDAM, type='EDAMClassifier'))),
        ComponentExample('EDAMOptimWrapperConstructor',
                         dict(optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=1e-3,
                                                                    momentum=0.9,
                                                                    weight_decay=5e-4)))),
    ]
