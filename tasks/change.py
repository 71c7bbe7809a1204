"""Change-request steps: filing and updating CRs in change management (git or ServiceNow).

A write checkpoints the CR in the locker in the same task run (`tasks.audit.checkpoint`).
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import task
from prefect.cache_policies import NO_CACHE

from changeflow.models import ChangeRequest
from changeflow.ports import ChangeManagement, Stores
from tasks.audit import checkpoint
from tasks.io import IO

__all__ = [
    "file_change_request",
    "list_change_requests",
    "read_change_request",
    "update_change_request",
]


@task(name="file-change-request", cache_policy=NO_CACHE)
def file_change_request(stores: Stores, draft: Callable[[str], ChangeRequest]) -> ChangeRequest:
    """Allocate an id, file the CR drafted for it and checkpoint it."""
    filed = stores.changes.create(draft, message="filed by the deploy flow")
    checkpoint(stores, filed.id)  # signed, in the locker: a rewrite of it is named
    return filed


@task(name="update-change-request", task_run_name="cr-{message}", **IO)
def update_change_request(
    stores: Stores, cr: ChangeRequest, message: str, expected: str | None = None
) -> ChangeRequest:
    """Record a CR's new state as one change and checkpoint it; refused (`StaleChange`) when
    the stored CR is no longer the revision `expected` the flow read (a retried write that
    landed is a no-op, and checkpoints the same head again)."""
    written = stores.changes.update(cr, message=message, expected=expected)
    checkpoint(stores, written.id)  # signed, in the locker: a rewrite of it is named
    return written


@task(name="read-change-request", **IO)
def read_change_request(changes: ChangeManagement, cr_id: str) -> ChangeRequest:
    """One CR, as change management holds it now."""
    return changes.get(cr_id)


@task(name="list-change-requests", **IO)
def list_change_requests(
    changes: ChangeManagement, environment: str | None = None, open_only: bool = False
) -> list[ChangeRequest]:
    """The change requests of `environment` (every one when None), only open ones with
    `open_only`, in id order; the backend reads no others."""
    return changes.list(environment, open_only)
