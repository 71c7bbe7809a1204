"""Opening the record stores a run works with: a saved block of the given name wins, else the
`CHANGEFLOW_*` variables.

`use_stores` swaps in other implementations of the ports for the runs of one process (the
in-memory ones of `blocks.memory`, in tests), the way `prefect_test_harness` swaps the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from prefect.blocks.core import Block

from blocks.change_management import GitChangeManagement
from blocks.evidence_locker import EvidenceLocker
from blocks.inventory import GitInventory
from blocks.servicenow import ServiceNowChangeManagement
from changeflow.ports import ChangeManagement, EvidenceStore, IncidentStore, Inventory, Stores
from changeflow.requests import DEFAULT_STORES, RecordStores

__all__ = [
    "change_management",
    "evidence_locker",
    "incidents",
    "inventory",
    "open_stores",
    "use_stores",
]

B = TypeVar("B", bound=Block)

_in_use: list[Stores] = []


def _saved(kind: type[B], name: str | None) -> B | None:
    if not name:
        return None
    try:
        return kind.load(name)
    except (ValueError, RuntimeError):
        return None


def evidence_locker(name: str | None = DEFAULT_STORES.evidence_locker) -> EvidenceStore:
    """The evidence locker: the saved block `name`, else from `CHANGEFLOW_S3_*`."""
    if _in_use:
        return _in_use[-1].evidence
    return _saved(EvidenceLocker, name) or EvidenceLocker.from_env()


def inventory(name: str | None = DEFAULT_STORES.inventory) -> Inventory:
    """The inventory: the saved block `name`, else from `CHANGEFLOW_INVENTORY_URL`."""
    if _in_use:
        return _in_use[-1].inventory
    return _saved(GitInventory, name) or GitInventory.from_env()


def change_management(name: str | None = DEFAULT_STORES.change_management) -> ChangeManagement:
    """Change management: the saved block `name` (a git repo or ServiceNow), else the git repo
    `CHANGEFLOW_CHANGE_REPO_URL`."""
    if _in_use:
        return _in_use[-1].changes
    saved: ChangeManagement | None = _saved(GitChangeManagement, name) or _saved(
        ServiceNowChangeManagement, name
    )
    return saved or GitChangeManagement.from_env()


def incidents(name: str | None = DEFAULT_STORES.change_management) -> IncidentStore:
    """Where incidents are kept: beside the change requests."""
    if _in_use:
        return _in_use[-1].incidents
    return change_management(name)  # type: ignore[return-value]


def open_stores(names: RecordStores = DEFAULT_STORES) -> Stores:
    """Every store a run needs, opened once."""
    if _in_use:
        return _in_use[-1]
    return Stores(
        evidence=evidence_locker(names.evidence_locker),
        inventory=inventory(names.inventory),
        changes=change_management(names.change_management),
        incidents=incidents(names.change_management),
    )


@contextmanager
def use_stores(stores: Stores) -> Iterator[Stores]:
    """Within the block, every run of this process works with `stores`."""
    _in_use.append(stores)
    try:
        yield stores
    finally:
        _in_use.remove(stores)
