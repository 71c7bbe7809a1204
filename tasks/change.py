"""Change-request steps: filing and updating CRs in change management (git or ServiceNow)."""

from __future__ import annotations

from collections.abc import Callable

from prefect import task
from prefect.cache_policies import NO_CACHE

from changeflow.models import ChangeRequest
from changeflow.ports import ChangeManagement
from tasks.io import IO

__all__ = [
    "file_change_request",
    "list_change_requests",
    "read_change_request",
    "update_change_request",
]


@task(name="file-change-request", cache_policy=NO_CACHE)
def file_change_request(
    changes: ChangeManagement, draft: Callable[[str], ChangeRequest]
) -> ChangeRequest:
    """Allocate an id and file the CR drafted for it."""
    return changes.create(draft, message="filed by the deploy flow")


@task(name="update-change-request", task_run_name="cr-{message}", **IO)
def update_change_request(
    changes: ChangeManagement, cr: ChangeRequest, message: str, expected: str | None = None
) -> ChangeRequest:
    """Record a CR's new state as one change; refused (`StaleChange`) when the stored CR is no
    longer the revision `expected` the flow read (a retried write that landed is a no-op)."""
    return changes.update(cr, message=message, expected=expected)


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
