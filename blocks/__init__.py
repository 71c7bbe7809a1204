"""Prefect blocks of changeflow: `prefect block register -m blocks` registers every one of them.

The block classes are imported on first use (PEP 562), so importing a light module of this
package (`cli.local_stack`, say) neither imports Prefect before its settings are in place nor
creates an import cycle with `blocks.stores`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blocks.change_management import GitChangeManagement
    from blocks.evidence_locker import EvidenceLocker
    from blocks.incidents import GitIncidents
    from blocks.inventory import GitInventory
    from blocks.servicenow import ServiceNowChangeManagement, ServiceNowIncidents

__all__ = [
    "EvidenceLocker",
    "GitChangeManagement",
    "GitIncidents",
    "GitInventory",
    "ServiceNowChangeManagement",
    "ServiceNowIncidents",
]

_HOMES = {
    "EvidenceLocker": "blocks.evidence_locker",
    "GitInventory": "blocks.inventory",
    "GitChangeManagement": "blocks.change_management",
    "GitIncidents": "blocks.incidents",
    "ServiceNowChangeManagement": "blocks.servicenow",
    "ServiceNowIncidents": "blocks.servicenow",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
