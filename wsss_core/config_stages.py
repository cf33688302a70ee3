"""A config's ``stages``: by name (a dict) or by position (a list), resolved to the run order.

Two forms build the same stages (same options, so the same config hashes):

* a dict ``{name: stage config}``, the form the shipped configs use.  Its insertion order is
  the run order, and mmengine merges a child config's dict into its ``_base_``'s by key: a
  stage the base has is changed in place (only the keys the child gives), a new one is
  appended.  The key is the stage's name; a ``name=`` inside must equal it or be absent.

  - insert:  ``new=dict(type=..., after='cams')`` (or ``before='cams'``) places the new stage
    right after (before) the named one; several stages placed after the same one keep their
    config order.  ``after`` / ``before`` are placement, not options: they are not hashed.
  - remove:  ``stages=dict(sheet=None)`` drops the stage ``sheet`` (a stage that reads it
    then fails to build, naming it).
  - change:  ``stages=dict(classify=dict(max_epochs=3))`` or
    ``--cfg-options stages.classify.max_epochs=3``.

* a list of stage dicts, each with its ``name`` (older and third-party configs).
  ``--cfg-options stages.<name>.x=...`` works on it too: :func:`by_name_options` turns the
  name into the stage's index before mmengine merges (``stages.N.x`` keeps working, and on a
  dict config ``stages.N`` addresses the N-th stage).

:func:`stage_configs` gives either form as the list of stage dicts in run order, each with
its ``name``: what :class:`~wsss_core.pipeline.Pipeline` builds and what
:func:`wsss_core.config.load_config` leaves in ``cfg.stages``.  Imports no torch.
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = ['StageOrderError', 'stage_configs', 'by_name_options', 'check_stage_types',
           'did_you_mean', 'PLACEMENT_KEYS']

#: keys of a stage config that place it in the run order (never passed to the stage)
PLACEMENT_KEYS = ('after', 'before')


class StageOrderError(ValueError):
    """A ``stages`` entry that cannot be named or placed; the message says which and why."""


def _plain(value: Any) -> Any:
    return value.to_dict() if hasattr(value, 'to_dict') else value


def stage_configs(stages: Any) -> List[dict]:
    """``stages`` (dict or list form, see the module doc) as stage dicts in run order.

    Dict form: each entry gets ``name`` = its key; ``None`` entries are dropped; a stage with
    ``after=A`` / ``before=B`` is moved next to ``A`` / ``B`` (which may itself be placed).
    List form: the stage dicts as they are, except that ``after`` / ``before`` place them too.
    Each returned dict is a shallow copy without the placement keys.
    """
    stages = _plain(stages)
    if not stages:
        return []
    if isinstance(stages, Mapping):
        entries = []
        for key, scfg in stages.items():
            if scfg is None:
                continue   # removed by a variant: stages=dict(name=None)
            scfg = _plain(scfg)
            if not isinstance(scfg, Mapping):
                raise StageOrderError(f'stages.{key} must be a dict (or None to remove the '
                                      f'stage), got {type(scfg).__name__}')
            scfg = dict(scfg)
            if scfg.get('name', key) != key:
                raise StageOrderError(f"stages.{key} has name={scfg['name']!r}: a stage in a "
                                      "stages dict is named by its key (drop 'name' or make "
                                      'it equal the key)')
            scfg['name'] = key
            entries.append(scfg)
    elif isinstance(stages, (list, tuple)):
        entries = [dict(_plain(s)) if isinstance(_plain(s), Mapping) else s for s in stages]
        for i, scfg in enumerate(entries):
            if not isinstance(scfg, dict):
                raise StageOrderError(f'stages.{i} must be a dict, got {type(scfg).__name__}')
    else:
        raise StageOrderError(f"'stages' must be a dict {{name: stage}} or a list of stage "
                              f'dicts, got {type(stages).__name__}')
    return _placed(entries)


def _placed(entries: List[dict]) -> List[dict]:
    """Entries without ``after`` / ``before`` in order, then each placed one next to its
    anchor (in config order; repeated passes let an anchor be a placed stage itself)."""
    order = [e for e in entries if not any(k in e for k in PLACEMENT_KEYS)]
    pending = [e for e in entries if any(k in e for k in PLACEMENT_KEYS)]
    after_count: Dict[str, int] = {}
    while pending:
        progressed, waiting = False, []
        for entry in pending:
            if 'after' in entry and 'before' in entry:
                raise StageOrderError(f"stage {entry.get('name')!r} gives both 'after' and "
                                      "'before'; give one")
            where = 'after' if 'after' in entry else 'before'
            anchor = entry[where]
            names = [e.get('name') for e in order]
            if anchor not in names:
                waiting.append(entry)
                continue
            at = names.index(anchor)
            if where == 'after':
                at += 1 + after_count.get(anchor, 0)
                after_count[anchor] = after_count.get(anchor, 0) + 1
            order.insert(at, {k: v for k, v in entry.items() if k not in PLACEMENT_KEYS})
            progressed = True
        if not progressed:
            entry = waiting[0]
            where = 'after' if 'after' in entry else 'before'
            raise StageOrderError(
                f"stage {entry.get('name')!r} is placed {where}={entry[where]!r}, which is not a "
                f'stage of this config (stages: {[e.get("name") for e in entries]})')
        pending = waiting
    return order


def by_name_options(cfg_options: Optional[Mapping[str, Any]], stages: Any) -> Optional[dict]:
    """``--cfg-options`` keys with ``stages.<name>`` turned into what ``stages`` indexes by.

    On a list ``stages``: ``stages.classify.max_epochs`` -> ``stages.2.max_epochs`` (the index
    of the stage named ``classify``); on a dict: ``stages.2.x`` -> ``stages.<2nd name>.x``
    when ``2`` is not itself a key.  Other keys are untouched.  An unknown stage name raises
    :class:`StageOrderError` naming the stages (and the closest names): on a list config
    always; on a dict config unless the options define that stage, i.e. give its ``type``
    (``stages.new.type=X`` or ``stages.new=dict(type=X, ...)``) -- so a misspelt
    ``stages.clasify.max_epochs`` stops the run instead of adding a stage without a type.
    """
    if not cfg_options:
        return cfg_options
    stages = _plain(stages)
    defined = _stages_defined_by(cfg_options)
    out = {}
    for key, value in cfg_options.items():
        head, _, rest = str(key).partition('.')
        if head != 'stages' or not rest:
            out[key] = value
            continue
        part, dot, tail = rest.partition('.')
        out[f'stages.{_stage_address(part, stages, defined)}{dot}{tail}'] = value
    return out


def _stages_defined_by(cfg_options: Mapping[str, Any]) -> set:
    """The stage names that ``cfg_options`` defines whole: ``stages.<n>.type`` or a
    ``stages.<n>`` value that is a dict with a ``type``."""
    defined = set()
    for key, value in cfg_options.items():
        parts = str(key).split('.')
        if parts[0] != 'stages' or len(parts) < 2:
            continue
        if (len(parts) == 3 and parts[2] == 'type') or \
                (len(parts) == 2 and isinstance(value, Mapping) and 'type' in value):
            defined.add(parts[1])
    return defined


def did_you_mean(name: str, candidates, n: int = 3) -> str:
    """``"did you mean 'a' or 'b'?"`` for the ``candidates`` closest to a misspelt ``name``
    (difflib ratio >= 0.6); ``''`` when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates if c is not None],
                                      n=n, cutoff=0.6)
    return f'did you mean {" or ".join(repr(c) for c in close)}?' if close else ''


def _unknown_stage(part: str, names: list, can_add: bool) -> StageOrderError:
    close = did_you_mean(part, names)
    hint = f'; {close}' if close else ''
    new = f'; a new stage needs stages.{part}.type' if can_add else ''
    return StageOrderError(f'--cfg-options stages.{part}: no stage is named {part!r}{hint} '
                           f'(stages: {names}{new})')


def check_stage_types(stages: List[dict]) -> None:
    """Raise :class:`StageOrderError` for a resolved stage without ``type``: in a dict config
    that is a derived config (or ``--cfg-options``) changing a stage by a name its
    ``_base_`` does not have, which would otherwise add a stage that cannot be built."""
    untyped = [s.get('name') for s in stages if isinstance(s, Mapping) and 'type' not in s]
    if not untyped:
        return
    typed = [str(s.get('name')) for s in stages if isinstance(s, Mapping) and 'type' in s]
    close = did_you_mean(untyped[0], typed)
    hint = f'{close} ' if close else ''
    raise StageOrderError(f'stages.{untyped[0]} has no type: a config that changes a stage of '
                          f"its _base_ must use that stage's name ({hint}stages: {typed}); a "
                          'new stage needs its type')


def _stage_address(part: str, stages: Any, defined: set = frozenset()) -> str:
    if part == '_delete_':   # stages._delete_=True: mmengine replaces the whole stages
        return part
    if isinstance(stages, Mapping):
        keys = list(stages)
        if part in stages or part in defined:
            return part
        if part.isdigit() and int(part) < len(keys):
            return str(keys[int(part)])
        raise _unknown_stage(part, keys, can_add=True)
    if isinstance(stages, Sequence) and not part.isdigit():
        names = [_plain(s).get('name') if isinstance(_plain(s), Mapping) else None
                 for s in stages]
        if part not in names:
            raise _unknown_stage(part, names, can_add=False)
        return str(names.index(part))
    return part
