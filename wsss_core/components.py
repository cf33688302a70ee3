"""Register every core component: import the modules of the core's component table."""
from __future__ import annotations


def register_core_components() -> None:
    """Idempotent: importing registers; re-importing is a no-op.  Raises
    :class:`~wsss_core.plugin_table.ComponentNotRegistered` naming the module when one does
    not register a name the table (:data:`wsss_core.core_plugin.COMPONENTS`) gives it."""
    from .core_plugin import hookimpls
    hookimpls.table.register('core')
