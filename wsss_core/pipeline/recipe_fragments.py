"""The stages that took ``recipe=NAME`` refuse it with the way to the recipe's config fragment.

A published stage setting is a ``_base_`` config fragment that defines the stage by name
(``deeplab::_recipes/voc12_deeplabv2_r101.py``, ``deeplab::_recipes/synthetic.py``,
``getam::_recipes/voc12.py``); a config includes it and sets only what differs, and the options
the stage records and hashes are the merged ones.  A config written for the former
``recipe=`` option gets a :class:`~wsss_core.config_errors.ConfigBuildError` at build time that
says so, instead of Python's bare unexpected-keyword ``TypeError``.
:func:`fragment_stage_options` reads a fragment's stage, for code that builds the stage
directly (tests, benchmarks).
"""
from __future__ import annotations

__all__ = ['RECIPE_FRAGMENT_HINT', 'fragment_stage_options']

#: the hint of the refusal of ``recipe=`` (the stages' ``retired_options``)
RECIPE_FRAGMENT_HINT = (
    "Named recipes are config fragments now: drop recipe= and include the fragment that "
    "defines the stage by name, _base_ = ['deeplab::_recipes/voc12_deeplabv2_r101.py'] "
    "(or 'deeplab::_recipes/synthetic.py', 'getam::_recipes/voc12.py'); the config then sets "
    'only what differs.')


def fragment_stage_options(spec: str, stage: str) -> dict:
    """The options (no ``type`` / ``name``) of the stage ``stage`` that the config fragment
    ``spec`` defines, e.g. ``('deeplab::_recipes/synthetic.py', 'deeplab')``: what
    ``TrainSegmentor(name, **options)`` takes."""
    from wsss_core.config import load_config
    stages = {s['name']: s for s in load_config(spec).to_dict().get('stages') or ()}
    if stage not in stages:
        raise KeyError(f'{spec} defines no stage {stage!r}; its stages: {sorted(stages)}')
    return {k: v for k, v in stages[stage].items() if k not in ('type', 'name')}
