"""What the frozen config dataclasses of the generated data sets (SyntheticShapes, ShapeCorpus)
share: list fields frozen to tuples, a JSON dict, a fingerprint that names the generator's
version, and construction from a ``generator=`` dict that refuses unknown knobs."""
from __future__ import annotations

import dataclasses
import hashlib
import json

__all__ = ['freeze_sequences', 'check_size_and_classes', 'config_to_dict', 'config_fingerprint',
           'config_from_knobs']


def _to_tuple(value):
    return tuple(_to_tuple(v) if isinstance(v, (list, tuple)) else v for v in value)


def freeze_sequences(cfg) -> None:
    """Turn every list or tuple field of the frozen dataclass ``cfg`` into nested tuples (a
    config file gives lists), in place; call from ``__post_init__``."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, (list, tuple)):
            object.__setattr__(cfg, f.name, _to_tuple(value))


def check_size_and_classes(cfg, max_classes: int) -> None:
    """The bounds every generator shares: ``2 <= num_classes <= max_classes`` and
    ``image_size >= 32``; a ``ValueError`` names the knob."""
    if not 2 <= cfg.num_classes <= max_classes:
        raise ValueError(f'num_classes must lie in 2..{max_classes}, got {cfg.num_classes}')
    if cfg.image_size < 32:
        raise ValueError(f'image_size must be >= 32, got {cfg.image_size}')


def config_to_dict(cfg) -> dict:
    """All fields of ``cfg`` as plain JSON-able values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_fingerprint(cfg, version_key: str, version: int) -> str:
    """First 12 hex digits of the SHA-1 of the compact, key-sorted JSON of
    ``{version_key: version, **fields}``."""
    blob = json.dumps({version_key: version, **config_to_dict(cfg)},
                      sort_keys=True, separators=(',', ':'))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def config_from_knobs(cls, label: str, knobs: dict):
    """``cls(**knobs)``, refusing unknown knobs with a ``TypeError`` that lists the valid ones
    (``label`` names the data set in the message)."""
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(knobs) - valid)
    if unknown:
        raise TypeError(f'unknown {label} option(s) {unknown}; valid: {sorted(valid)}')
    return cls(**knobs)
