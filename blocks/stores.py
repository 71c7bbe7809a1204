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
from blocks.incidents import GitIncidents
from blocks.inventory import GitInventory
from blocks.servicenow import ServiceNowChangeManagement, ServiceNowIncidents
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
        loaded = kind.load(name)
    except (ValueError, RuntimeError):
        return None
    # `load` is typed for async callers too; runs open their stores synchronously
    return loaded if isinstance(loaded, kind) else None


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
    return _changes(name)


def _changes(name: str | None) -> GitChangeManagement | ServiceNowChangeManagement:
    return (
        _saved(GitChangeManagement, name)
        or _saved(ServiceNowChangeManagement, name)
        or GitChangeManagement.from_env()
    )


def incidents(
    name: str | None = DEFAULT_STORES.incidents,
    change_management: str | None = DEFAULT_STORES.change_management,
) -> IncidentStore:
    """Where incidents are kept: the saved block `name` (git or ServiceNow), else beside the
    change requests of `change_management`: ServiceNow's incident table on the same instance,
    or the same git repo."""
    if _in_use:
        return _in_use[-1].incidents
    return _saved_incidents(name) or _beside(_changes(change_management))


def _saved_incidents(name: str | None) -> GitIncidents | ServiceNowIncidents | None:
    return _saved(GitIncidents, name) or _saved(ServiceNowIncidents, name)


def _beside(changes: GitChangeManagement | ServiceNowChangeManagement) -> IncidentStore:
    if isinstance(changes, ServiceNowChangeManagement):
        return ServiceNowIncidents.on_instance_of(changes)
    return GitIncidents(remote_url=changes.remote_url, cache_dir=changes.cache_dir)


def open_stores(names: RecordStores = DEFAULT_STORES) -> Stores:
    """Every store a run needs, opened once."""
    if _in_use:
        return _in_use[-1]
    changes = _changes(names.change_management)
    return Stores(
        evidence=evidence_locker(names.evidence_locker),
        inventory=inventory(names.inventory),
        changes=changes,
        incidents=_saved_incidents(names.incidents) or _beside(changes),
    )


@contextmanager
def use_stores(stores: Stores) -> Iterator[Stores]:
    """Within the block, every run of this process works with `stores`."""
    _in_use.append(stores)
    try:
        yield stores
    finally:
        _in_use.remove(stores)
