"""``'item:NAME'`` in configs: finding the references, resolving them, checking them first.

A config names what it needs on disk by item instead of by path::

    data = dict(type='VOC2012', data_root='item:voc12-aug', saliency_dir='saliency_aug')
    backbone = dict(type='VGG16OAA', pretrained='item:torchvision-vgg16')

``'item:NAME'`` resolves to the item's path under its root (``$WSSS_DATA`` or
``$WSSS_WEIGHTS``); ``'item:NAME/sub/path'`` to a path inside it.  The datasets
(:func:`wsss_core.datasets.build_dataset`) and the weight loader
(:func:`wsss_core.models.timm_backbone.load_state_dict_file`) resolve them where they read,
so the config (and the stage hashes) keep the portable form.  ``wsss-run`` calls
:func:`check_config_items` before any stage runs: a missing item stops the run naming it
and the ``wsss-prepare`` command that gets it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional, Tuple

from .items import PrepareItem, get_item, is_item_ref, item_name_of, root_dir

__all__ = ['MissingItemError', 'UnknownItemError', 'find_item_refs', 'resolve_item_ref',
           'resolve_path', 'config_items', 'check_config_items']


class MissingItemError(FileNotFoundError):
    """Items a config needs are not installed; the message lists them and the command."""


def find_item_refs(cfg: Any, path: str = '') -> Iterator[Tuple[str, str]]:
    """``(key path, 'item:...')`` for every item reference in a config (dicts, lists)."""
    if isinstance(cfg, Mapping):
        for key, value in cfg.items():
            yield from find_item_refs(value, f'{path}.{key}' if path else str(key))
    elif isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            yield from find_item_refs(value, f'{path}.{i}')
    elif is_item_ref(cfg):
        yield path, cfg


def resolve_item_ref(ref: str, items: Optional[Mapping[str, PrepareItem]] = None,
                     roots: Optional[Mapping[str, os.PathLike]] = None) -> Path:
    """The absolute path ``'item:NAME[/sub]'`` stands for (whether or not it exists)."""
    name, sub = item_name_of(ref)
    item = get_item(name, items)
    base = root_dir(item.root, (roots or {}).get(item.root))
    location = item.location(base)
    return location / sub if sub else location


def resolve_path(value, items: Optional[Mapping[str, PrepareItem]] = None):
    """``value`` with an item reference resolved (a str path); anything else unchanged."""
    if is_item_ref(value):
        return os.fspath(resolve_item_ref(value, items))
    return value


class UnknownItemError(KeyError):
    """A config names ``item:NAME`` and no prepare item is called NAME (the message names the
    config key and the closest items)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


def config_items(cfg: Any, items: Optional[Mapping[str, PrepareItem]] = None
                 ) -> List[Tuple[PrepareItem, List[str]]]:
    """The items a config names, each with the key paths that name it, in first-use order.
    An unknown item name is an :class:`UnknownItemError` (a KeyError) naming the key path."""
    from .items import all_items
    items = all_items() if items is None else items
    found: dict = {}
    for key, ref in find_item_refs(cfg):
        name, _ = item_name_of(ref)
        try:
            item = get_item(name, items)
        except KeyError as exc:
            raise UnknownItemError(f'{key} = {ref!r}: {exc.args[0]}') from None
        found.setdefault(item.name, (item, []))[1].append(key)
    return list(found.values())


def check_config_items(cfg: Any, items: Optional[Mapping[str, PrepareItem]] = None,
                       config_name: str = 'CONFIG') -> List[PrepareItem]:
    """Raise :class:`MissingItemError` if an item the config names is missing or corrupt
    (its requirements are checked by its own marker); returns the items it names."""
    from .ledger import item_status
    if next(find_item_refs(cfg), None) is None:
        return []
    named = config_items(cfg, items)
    problems = []
    for item, keys in named:
        status, detail = item_status(item)
        if status in ('missing', 'corrupt'):
            problems.append(f"  {item.name} ({item.description}): {status}, {detail}; "
                            f"used by {', '.join(keys)}")
    if problems:
        names = ' '.join(item.name for item, _ in named
                         if item_status(item)[0] in ('missing', 'corrupt'))
        raise MissingItemError(
            'this config needs data or weights that are not installed:\n' + '\n'.join(problems)
            + f'\nget them with: wsss-prepare {names}   (or: wsss-prepare --for {config_name})'
            + f"\nroots: data {root_dir('data')} ($WSSS_DATA), weights {root_dir('weights')} "
              '($WSSS_WEIGHTS)')
    return [item for item, _ in named]
