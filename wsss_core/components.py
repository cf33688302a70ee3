"""Register every core component: import the modules of the core's component table."""
from __future__ import annotations


def register_core_components() -> None:
    """Idempotent: importing registers; re-importing is a no-op.  Raises
    :class:`~wsss_core.plugin_table.ComponentTableError` when registering does not match the
    table (:data:`wsss_core.core_plugin.COMPONENTS`): a module that does not register a name
    the table gives it (named), or a registered name the table does not declare."""
    from .core_plugin import hookimpls
    hookimpls.table.register('core')
