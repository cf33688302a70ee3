"""Shrinking a shipped config's stages by their counts, for end-to-end tests.

:func:`count_shrink` gives, per stage type, the options that make a stage cheap without
touching any size: epochs, iterations, batch sizes, workers, CRF iterations, the ShapeCorpus's
image counts. Image sizes, crops, network widths and the data stay as the config has them, so
a run shrunk this way still meets every shape the config meets (``tests/test_real_configs_smoke``
adds its size rules on top; ``tests/test_synthetic_configs_other_sizes`` runs the synthetic
configs on SyntheticShapes of other image sizes with counts alone).
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Tuple

#: stage types whose cost follows from the data and the stages before them
NOTHING_TO_SHRINK = ('EvaluateLabels', 'ExportAttention', 'EvaluateClassifier', 'RenderSheet')

#: the ShapeCorpus a shrunk Pretrain stage trains on: 4 classes, 2 + 1 images each
TINY_CORPUS_GENERATOR = dict(num_classes=4, train_per_class=2, val_per_class=1)


def flat_items(d: dict, prefix: str = '') -> Iterator[Tuple[str, object]]:
    """``('a.b.c', value)`` for every leaf of the nested dict ``d``."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flat_items(v, f'{prefix}{k}.')
        else:
            yield f'{prefix}{k}', v


def is_validation_test(stage: dict) -> bool:
    """A TestSegmentor scoring the validation split (a test on the training images feeds a
    later stage, so it is not cut to a few images)."""
    return stage['type'] == 'TestSegmentor' and stage.get('split', 'val') == 'val'


def count_shrink(stage: dict) -> Dict[str, object]:
    """The count options of one stage, by its type (keys relative to the stage, nested keys
    dotted). Raises ``KeyError`` for a stage type without a rule, so that a new stage type
    cannot slip through at full cost."""
    kind = stage['type']
    out: Dict[str, object] = {}
    if kind in ('TrainClassifier', 'TrainIntegralAttention', 'TrainPairClassifier'):
        hooks = [h['type'] for h in stage.get('custom_hooks') or ()]
        # OAA accumulates from the second epoch on: two epochs so that every image has a map
        out.update(max_epochs=2 if 'OAAAccumulationHook' in hooks else 1,
                   batch_size=min(2, stage.get('batch_size', 2)), num_workers=0, log_interval=1)
        if kind == 'TrainPairClassifier':
            out.update(passes=1, warmup_steps=1)
    elif kind == 'TrainSegmentor':
        out.update(max_iters=2, batch_size=2, iter_size=1, num_workers=0, log_interval=1)
    elif kind == 'TrainGETAM':
        out.update(max_epochs=2, batch_size=2, num_workers=0, log_interval=1)
    elif kind == 'TrainIRN':
        out.update(batch_size=2, max_epochs=1, num_workers=0)
    elif kind == 'Pretrain':
        out.update({'max_epochs': 1, 'batch_size': 8, 'log_interval': 1,
                    'corpus.progress': False, 'corpus.workers': 0})
        out.update({f'corpus.generator.{k}': v for k, v in TINY_CORPUS_GENERATOR.items()})
    elif kind in ('RefineLabels', 'TestSegmentor', 'MaskNonSalientRegions'):
        out.update(workers=0)
        if is_validation_test(stage):
            out['max_samples'] = 2
        if isinstance(stage.get('crf'), dict):       # a dense CRF over the full-size image
            out['crf.iterations'] = 1
        for i, refiner in enumerate(stage.get('refiners') or ()):
            if refiner['type'] in ('DenseCRF', 'IRLabels'):     # their dense CRFs
                out[f'refiners.{i}.iterations'] = 1
    elif kind == 'RandomWalkLabels':
        out.update(exp_times=3)
    elif kind not in ('MakeCAMs', 'EvaluateWSOL') + NOTHING_TO_SHRINK:
        raise KeyError(f'stage {stage["name"]!r}: no shrink rule for stage type {kind!r}; add '
                       'one to wsss_core.testing.shrink.count_shrink')
    return out


def count_shrink_options(stages: List[dict]) -> Dict[str, object]:
    """:func:`count_shrink` of every stage as ``{'stages.<name>.<key>': value}``, the form
    :func:`wsss_core.config.merge_options` takes."""
    return {f'stages.{stage["name"]}.{key}': value for stage in stages
            for key, value in count_shrink(stage).items()}
