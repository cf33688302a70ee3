"""Composing one pipeline from the stages of other configs: ``stages_from``.

A config that runs several methods in one work dir (``configs/zoo.py``) takes each method's
stages from that method's own runnable config, so the two never drift apart:

.. code-block:: python

    _base_ = ['core::quickstart_pretrained.py']        # _base_ first (see below)
    from wsss_core.config_compose import stages_from

    stages = dict(
        **stages_from('oaa::synthetic_pretrained.py', ['oaa_pretrain', 'oaa_classify', 'oaa_*']),
        **stages_from('edam::synthetic_pretrained.py', ['edam_*'],
                      update={'edam_deeplab': dict(max_iters=500)}),
    )

``stages_from(spec, select)`` loads ``spec`` (``PLUGIN::path.py`` or a path, with its whole
``_base_`` chain) and returns its stages whose names match ``select`` (names or
:mod:`fnmatch` patterns such as ``'oaa_*'``), in that config's run order, as a dict
``name -> stage config`` with the placement keys resolved away, ready to be merged into a
``stages`` dict.  Two sources that both define a stage of one name cannot both be unpacked
into one ``dict(...)`` (Python refuses the repeated keyword), so a name clash is loud.

``update`` merges options into the selected stages whose names match its keys (patterns
too), with mmengine's merge rules (nested dicts merge, ``_delete_=True`` replaces).

mmengine treats a config file with an ``import`` as a "lazy import" config unless its
``_base_`` assignment comes before the import; a composing config therefore starts with
``_base_ = [...]`` and imports this module after it.
"""
from __future__ import annotations

import copy
import fnmatch
from typing import Dict, Mapping, Optional, Sequence

__all__ = ['stages_from']


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def stages_from(spec: str, select: Sequence[str], exclude: Sequence[str] = (),
                update: Optional[Mapping[str, dict]] = None) -> Dict[str, dict]:
    """The stages of the config ``spec`` whose names match ``select``, in its run order.

    Args:
        spec: a config (``'oaa::synthetic_pretrained.py'`` or a path).
        select: stage names or fnmatch patterns; each must match at least one stage.
        exclude: names or patterns of stages to leave out of the selection.
        update: ``{pattern: options}`` merged into each selected stage whose name matches
            the pattern (mmengine's merge: nested dicts merge, ``_delete_=True`` replaces);
            each pattern must match a selected stage.

    Returns:
        ``{name: stage config}`` (plain dicts without ``name``/``before``/``after``).

    Raises:
        ConfigError: a pattern of ``select`` or ``update`` that matches nothing, naming the
            config's stages.
    """
    from mmengine.config import Config

    from .config import ConfigError, load_config
    select = [select] if isinstance(select, str) else list(select)
    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    cfg = load_config(spec)
    names = [s['name'] for s in cfg.get('stages') or []]
    unmatched = [p for p in select if not any(_matches(n, [p]) for n in names)]
    if unmatched:
        raise ConfigError(f'stages_from({spec!r}): {unmatched} match no stage of it; its '
                          f'stages: {names}')
    chosen = {}
    for stage in cfg.stages:
        if _matches(stage['name'], select) and not _matches(stage['name'], exclude):
            plain = stage.to_dict() if hasattr(stage, 'to_dict') else copy.deepcopy(dict(stage))
            chosen[plain.pop('name')] = plain
    for pattern, options in (update or {}).items():
        targets = [n for n in chosen if _matches(n, [pattern])]
        if not targets:
            raise ConfigError(f'stages_from({spec!r}): update pattern {pattern!r} matches no '
                              f'selected stage; selected: {list(chosen)}')
        for name in targets:
            chosen[name] = Config._merge_a_into_b(copy.deepcopy(dict(options)), chosen[name])
    return chosen
