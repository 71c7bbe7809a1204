"""Loading the blocks a flow needs: a saved block of the given name wins, else the environment."""

from __future__ import annotations

from typing import TypeVar

from prefect.blocks.core import Block

from blocks.change_management import GitChangeManagement
from blocks.evidence_locker import EvidenceLocker
from blocks.inventory import GitInventory
from blocks.servicenow import ServiceNowChangeManagement
from changeflow.requests import DEFAULT_STORES

__all__ = ["change_management", "evidence_locker", "inventory"]

B = TypeVar("B", bound=Block)


def _saved(kind: type[B], name: str | None) -> B | None:
    if not name:
        return None
    try:
        return kind.load(name)
    except (ValueError, RuntimeError):
        return None


def evidence_locker(name: str | None = DEFAULT_STORES.evidence_locker) -> EvidenceLocker:
    """The evidence locker: the saved block `name`, else from `CHANGEFLOW_S3_*`."""
    return _saved(EvidenceLocker, name) or EvidenceLocker.from_env()


def inventory(name: str | None = DEFAULT_STORES.inventory) -> GitInventory:
    """The inventory: the saved block `name`, else from `CHANGEFLOW_INVENTORY_URL`."""
    return _saved(GitInventory, name) or GitInventory.from_env()


def change_management(name: str | None = DEFAULT_STORES.change_management) -> GitChangeManagement:
    """Change management: the saved block `name` (a git repo or ServiceNow), else the git repo
    `CHANGEFLOW_CHANGE_REPO_URL`.

    ServiceNow offers the same change-request methods as the git repo, which the flows use.
    """
    saved = _saved(GitChangeManagement, name) or _saved(ServiceNowChangeManagement, name)  # type: ignore[arg-type]
    return saved or GitChangeManagement.from_env()  # type: ignore[return-value]
