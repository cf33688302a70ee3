"""Named recipes: a stage's published settings under a name, so configs do not restate them.

A stage that supports them takes ``recipe=NAME`` and starts from ``table[NAME]``; the options
the config gives override the recipe's.  A ``model`` with a ``type`` replaces the recipe's
model; one without (``--cfg-options stages.getam.model.backbone.model_name=deit``) patches it,
recursively.  The expanded options are what the stage records and hashes, so a config written
out in full and one naming the recipe are the same stage.  Used by DeepLab's
``TrainSegmentor`` / ``TestSegmentor`` and GETAM's ``TrainGETAM``.
"""
from __future__ import annotations

import copy
from typing import Optional

__all__ = ['with_recipe']


def with_recipe(table: dict, recipe: Optional[str], options: dict, stage: str,
                what: str = 'stage') -> dict:
    """``options`` over the recipe's (a deep copy); no recipe: ``options`` unchanged.

    ``what`` names the recipe family in the error for an unknown name (e.g. ``'DeepLab'``).
    """
    if recipe is None:
        return options
    if recipe not in table:
        raise KeyError(f'[{stage}] unknown {what} recipe {recipe!r}; recipes: {sorted(table)}')
    merged = copy.deepcopy(table[recipe])
    options = dict(options)
    model = options.pop('model', None)
    merged.update(options)
    if model is not None:
        model = dict(model)
        merged['model'] = model if 'type' in model else _patched(merged.get('model', {}), model)
    return merged


def _patched(base: dict, patch: dict) -> dict:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and 'type' not in value:
            out[key] = _patched(out[key], value)
        else:
            out[key] = value
    return out
