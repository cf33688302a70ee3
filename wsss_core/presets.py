"""Named presets that plugins fill: a table ``name -> value`` open to registration.

A preset is a published setting under a name (a dense-CRF kernel set, a WSOL evaluation
mode).  The core registers its own; a plugin registers the presets of its method when its
modules are imported, i.e. when it is loaded (its component table imports the module that
calls :meth:`PresetTable.register`).  Lookup of a name nobody registered raises
:class:`UnknownPresetError`, which lists the registered names with who registered them and
names the plugin to load: a discovered plugin whose name is the preset's name or its prefix
before a ``-`` (the convention: ``'getam'`` by the plugin ``getam``, ``'moana-compat'`` by
``moana``).

Presets are plain values, not components: they are not in the component tables and are
not built from configs (a config names one as an option, ``DenseCRF(preset='getam')``).
"""
from __future__ import annotations

from typing import Dict, Generic, Iterator, Mapping, Optional, Tuple, TypeVar

__all__ = ['PresetTable', 'UnknownPresetError']

T = TypeVar('T')


class UnknownPresetError(KeyError, ValueError):
    """A preset name that no loaded plugin registered (a KeyError and a ValueError)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class PresetTable(Mapping[str, T], Generic[T]):
    """``name -> value`` with the registering party (``source``) of each entry.

    ``what`` names the kind of preset in messages (``'dense-CRF preset'``).  Registering a
    name again with the same value and source is a no-op (a module imported twice, e.g.
    under spawn); with anything else it is a ValueError naming both sources.
    """

    def __init__(self, what: str):
        self.what = what
        self._entries: Dict[str, Tuple[T, str]] = {}

    def register(self, name: str, value: T, *, source: str) -> T:
        """Register ``value`` as ``name`` on behalf of ``source`` (``'core'`` or a plugin name);
        returns ``value``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f'a {self.what} name must be a non-empty string, got {name!r}')
        old = self._entries.get(name)
        if old is not None and old != (value, source):
            raise ValueError(f'{self.what} {name!r} is already registered by {old[1]!r}; '
                             f'{source!r} cannot register it again')
        self._entries[name] = (value, source)
        return value

    def source(self, name: str) -> str:
        """Who registered ``name``."""
        self[name]
        return self._entries[name][1]

    def __getitem__(self, name: str) -> T:
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownPresetError(self._unknown_message(name))
        return entry[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f'PresetTable({self.what!r}, {self.described()})'

    def described(self) -> str:
        """``'a (core), b (getam)'``: the registered names, sorted, with their sources."""
        return ', '.join(f'{n} ({self._entries[n][1]})' for n in sorted(self._entries)) or 'none'

    def _unknown_message(self, name: str) -> str:
        msg = f'unknown {self.what} {name!r}; registered: {self.described()}.'
        plugin = provider_plugin(name)
        if plugin is not None:
            msg += (f" Presets are registered by the plugin that defines them when it is loaded: "
                    f"load the plugin '{plugin}' (plugins = [..., '{plugin}'] in the config, "
                    f"or WSSS_PLUGINS).")
        else:
            msg += (' A plugin registers its presets when it is loaded: load the plugin that '
                    'defines it (wsss-run --list-plugins lists the installed ones).')
        return msg


def provider_plugin(name: str) -> Optional[str]:
    """The discovered plugin (loaded or not) that by the naming convention defines preset
    ``name``: the plugin called ``name`` or called its prefix before the first ``-``."""
    try:
        from .plugin_loader import discovered_plugins
        plugins = {r.name for r in discovered_plugins()}
    except Exception:  # noqa: BLE001 - only a hint for an error message
        return None
    for candidate in (name, name.split('-', 1)[0]):
        if candidate in plugins and candidate != 'core':
            return candidate
    return None
