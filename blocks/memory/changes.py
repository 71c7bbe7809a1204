"""Change management and incidents in memory: CR records with their history, incident records.

Like the git repo they stand in for, a CR's id is the next free number, allocated under a lock
so concurrent filings never share one; each change that alters a record is one history entry,
and writing a record as it already is changes nothing.
"""

from __future__ import annotations

import builtins
import secrets
import threading
from collections.abc import Callable, Collection

from changeflow.change_ids import change_number, check_listing, format_change_id, listed

# the texts of a change's history entry are those the git and ServiceNow backends write
from changeflow.change_notes import author_of, describe_change
from changeflow.deployed import bom_digests, check_digests, select_deployments
from changeflow.errors import BadInput
from changeflow.incidents import Incident
from changeflow.models import Approval, ChangeRequest, utcnow
from changeflow.ports import Commit
from changeflow.revisions import check_revision

__all__ = ["MemoryChangeManagement", "MemoryIncidents"]


class MemoryChangeManagement:
    """Change requests and their history, held in memory.

    Args:
        name: names the store in the links it gives (`memory://<name>/changes/<id>`).
    """

    def __init__(self, name: str = "change-management") -> None:
        self.name = name
        self._records: dict[str, ChangeRequest] = {}
        self._history: dict[str, builtins.list[Commit]] = {}
        self._by_digest: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def _record(self, cr: ChangeRequest, message: str, by: str | None) -> None:
        """Store a CR's new content and its history entry (the lock is held)."""
        # a copy, as the real backends keep a serialized record: a caller's later edits of
        # the object it passed in must not change what is stored
        self._records[cr.id] = cr.model_copy(deep=True)
        entry = Commit(
            commit=secrets.token_hex(20),
            author=author_of(by),
            date=utcnow().isoformat(),
            message=describe_change(cr, message, by),
        )
        self._history.setdefault(cr.id, []).insert(0, entry)

    def create(
        self,
        draft: Callable[[str], ChangeRequest],
        message: str = "change request created",
        *,
        by: str | None = None,
    ) -> ChangeRequest:
        """File the CR drafted for the next free id.

        Raises:
            BadInput: when the draft carries another id than the one it was given.
        """
        with self._lock:
            numbers = (change_number(i) or 0 for i in self._records)
            change_id = format_change_id(max(numbers, default=0) + 1)
            cr = draft(change_id)
            if cr.id != change_id:
                raise BadInput(f"the draft change request has id {cr.id}, not {change_id}")
            self._record(cr, message, by)
            for sha in bom_digests(cr):
                self._by_digest.setdefault(sha, set()).add(change_id)
        return cr

    def update(
        self,
        cr: ChangeRequest,
        message: str,
        *,
        by: str | None = None,
        expected: str | None = None,
    ) -> ChangeRequest:
        """Record a CR's new content as one change (none when it is unchanged).

        Args:
            cr: the record to store.
            message: what changed and why.
            by: who.
            expected: the revision the caller read; the write is refused when the stored CR
                is no longer that (checked and written under one lock).

        Raises:
            BadInput: when no CR has that id.
            StaleChange: when the CR changed since the caller read it.
        """
        with self._lock:
            stored = self._records.get(cr.id)
            if stored is None:
                raise BadInput(f"unknown change request {cr.id}")
            if check_revision(stored, cr, expected):
                self._record(cr, message, by)
        return cr

    def get(self, id: str) -> ChangeRequest:
        """One CR.

        Raises:
            BadInput: when there is none with that id.
        """
        with self._lock:
            found = self._records.get(id)
        if found is None:
            raise BadInput(f"unknown change request {id}")
        return found.model_copy(deep=True)

    def list(
        self, environment: str | None = None, open_only: bool = False
    ) -> builtins.list[ChangeRequest]:
        """The CRs of `environment` (every one when None), only open ones with `open_only`, in
        id order.

        Raises:
            BadInput: for a name that cannot be an environment.
        """
        check_listing(environment)
        with self._lock:
            return [
                self._records[i].model_copy(deep=True)
                for i in sorted(self._records)
                if listed(self._records[i], environment, open_only)
            ]

    def deployments(self, sha256s: Collection[str]) -> builtins.list[ChangeRequest]:
        """The CRs whose bill of materials names one of the digests, in id order.

        Like the real backends, it looks the ids up in an index by digest (filled when a CR
        is filed) and keeps those whose record lists one.

        Raises:
            BadInput: for a malformed digest.
        """
        digests = check_digests(sha256s)
        with self._lock:
            ids = {i for sha in digests for i in self._by_digest.get(sha, ())}
            named = [self._records[i].model_copy(deep=True) for i in ids]
        return select_deployments(named, digests)

    def history(self, id: str) -> builtins.list[Commit]:
        """Every change of one CR, newest first (none for an unknown id)."""
        with self._lock:
            return builtins.list(self._history.get(id, []))

    def link(self, cr: ChangeRequest) -> str | None:
        """Where the CR's record is."""
        return f"memory://{self.name}/changes/{cr.id}"

    def decision(self, id: str) -> Approval | None:
        """The decision recorded on the CR itself, if any."""
        return self.get(id).decision


class MemoryIncidents:
    """Incidents, open and closed, held in memory."""

    def __init__(self) -> None:
        self._incidents: dict[str, Incident] = {}
        self._lock = threading.Lock()

    def incidents(self) -> list[Incident]:
        """Every incident, in id order."""
        with self._lock:
            return [self._incidents[i].model_copy(deep=True) for i in sorted(self._incidents)]

    def put_incidents(self, incidents: list[Incident], message: str) -> None:
        """Open or update incidents in one change."""
        with self._lock:
            self._incidents.update({i.id: i.model_copy(deep=True) for i in incidents})
