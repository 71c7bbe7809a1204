"""The ports: what the flows need of each record store, as interfaces the adapters implement.

Tasks and flows are typed against these only. Each port has a real adapter (a Prefect block in
`blocks/`) and an in-memory one (`blocks/memory.py`); one contract suite
(`tests/contract/test_ports.py`) runs the same tests against both, so the fakes cannot drift.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from changeflow.delta import Delta
from changeflow.delta_origins import Origins
from changeflow.incidents import Incident
from changeflow.inventory_rules import InventoryCheck
from changeflow.models import (
    Approval,
    Asset,
    Attachment,
    ChangeRequest,
    Evidence,
    InventoryEntry,
    Promotion,
)
from changeflow.storage import StorageCheck
from changeflow.summary import EvidenceSummary, FoundEvidence
from changeflow.verification import Verification

__all__ = [
    "ChangeManagement",
    "Commit",
    "EvidenceStore",
    "IncidentStore",
    "Inventory",
    "Stores",
    "Verification",
]


class Commit(BaseModel):
    """One change in a record's history: who made it, when, and why."""

    commit: str
    author: str
    date: str
    message: str


@runtime_checkable
class EvidenceStore(Protocol):
    """The evidence locker: content-addressed, write-once evidence, attachments and summaries."""

    def store_attachment(self, path: Path, label: str | None = None) -> Attachment:
        """Store a file's bytes once under their sha256."""
        ...

    def store_attachment_bytes(self, data: bytes, label: str | None = None) -> Attachment:
        """Store bytes once under their sha256."""
        ...

    def get_attachment(self, hash_: str) -> bytes:
        """An attachment's bytes, re-hashed."""
        ...

    def download_attachment(self, hash_: str, target: Path) -> int:
        """Write an attachment to `target`, re-hashed; its size."""
        ...

    def holds_artifact(self, url: str) -> bool:
        """Whether an entry's artifact URL points into this store."""
        ...

    def put_evidence(
        self, evidence: Evidence, assets: Iterable[Asset] = (), envelope: bytes | None = None
    ) -> Evidence:
        """Store an evidence record with its signed DSSE envelope (if any), linked to its
        assets: a reader never finds the record without the envelope."""
        ...

    def get_evidence(self, evidence_id: str) -> Evidence:
        """One evidence record, re-hashed."""
        ...

    def evidence_for_assets(self, asset_ids: Iterable[str]) -> dict[str, list[Evidence]]:
        """Every evidence record about each asset."""
        ...

    def find_evidence(self, asset_ids: Iterable[str]) -> FoundEvidence:
        """Every evidence record about the assets; one that cannot be read is reported, not
        raised, so it never breaks a summary (a store that cannot be reached still raises)."""
        ...

    def put_summary(self, summary: EvidenceSummary) -> tuple[str, str]:
        """Store a deployment's evidence summary; its url and sha256."""
        ...

    def get_summary(self, url: str, expected: str) -> EvidenceSummary:
        """A stored summary, checked against the sha256 its CR recorded."""
        ...

    def put_evidence_envelope(self, evidence_id: str, envelope: bytes) -> None:
        """Store a signed DSSE envelope for a record stored before (write-once)."""
        ...

    def get_evidence_envelope(self, evidence_id: str) -> bytes | None:
        """An evidence record's envelope, or None when it has none (an unsigned record)."""
        ...

    def put_provenance(self, run_id: str, envelope: bytes) -> str:
        """Store one signed provenance of a build (a rerun adds another); its sha256."""
        ...

    def get_provenance(self, run_id: str) -> builtins.list[bytes]:
        """Every provenance envelope stored for a build."""
        ...

    def put_attestation(self, envelope: bytes) -> tuple[str, str]:
        """Store a signed decision (a VSA) once; its url and sha256."""
        ...

    def get_attestation(self, url: str, expected: str) -> bytes:
        """A signed decision, checked against the sha256 its CR recorded."""
        ...

    def verify_evidence(self, evidence_ids: Iterable[str]) -> Verification:
        """Re-hash evidence records and their attachments."""
        ...

    def verify_summary(self, url: str, expected: str) -> Verification:
        """Re-hash a summary and everything it names."""
        ...

    def verify_entries(self, entries: list[InventoryEntry]) -> Verification:
        """Re-hash the evidence and stored artifacts behind inventory entries."""
        ...

    def check_storage(self) -> StorageCheck:
        """Whether the store keeps evidence immutable for the required time."""
        ...


@runtime_checkable
class Inventory(Protocol):
    """The inventory: entries per branch, promotions between environments, labels."""

    def resolve(self, ref: str) -> str | None:
        """The commit a branch, label or commit names, or None."""
        ...

    def entries(self, ref: str) -> dict[str, InventoryEntry]:
        """Every entry at a ref."""
        ...

    def get(self, name: str, ref: str) -> InventoryEntry | None:
        """One entry at a ref."""
        ...

    def add_entries(
        self, entries: list[InventoryEntry], branch: str = "master", message: str | None = None
    ) -> str | None:
        """Record entries on a branch in one commit; the new head."""
        ...

    def remove_entries(
        self, names: list[str], branch: str = "master", message: str | None = None
    ) -> str:
        """Delete entries from a branch in one commit; its head after (promotions carry it on)."""
        ...

    def delta(self, from_ref: str | None, to_ref: str) -> Delta:
        """What changed between two refs."""
        ...

    def validate(self, ref: str) -> InventoryCheck:
        """Check every file that should be an entry at a ref."""
        ...

    def promotion(self, ref: str) -> Promotion | None:
        """The promotion last merged into a ref."""
        ...

    def origins(self, from_ref: str | None, to_ref: str, names: list[str]) -> Origins:
        """How each of `names` reached `to_ref` since `from_ref` (None: since the start): the
        commit that last changed it, and the promotion that commit merged, if any."""
        ...

    def promotable(
        self,
        source: str,
        target: str,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> list[str]:
        """The entry names a promotion would carry (refuses when none would)."""
        ...

    def promote(self, promotion: Promotion, merge: bool = True) -> Promotion:
        """Open a promotion and, unless reviewed, merge it."""
        ...

    def merge_promotion(self, promotion_id: str) -> str:
        """Merge a promotion left open for review; the target's new head."""
        ...

    def labels(self) -> dict[str, str]:
        """Every label and the commit it points at."""
        ...

    def add_label(self, label: str, ref: str) -> str:
        """Create a label (refused when it exists)."""
        ...

    def move_labels(self, labels: list[str], ref: str) -> str:
        """Point labels at a ref, creating missing ones: all of them or none (compare-and-swap)."""
        ...

    def delete_label(self, label: str) -> str:
        """Delete a label; the commit it pointed at."""
        ...


@runtime_checkable
class ChangeManagement(Protocol):
    """Where change requests are filed: a git repo or ServiceNow."""

    def create(
        self,
        draft: Callable[[str], ChangeRequest],
        message: str = "change request created",
        *,
        by: str | None = None,
    ) -> ChangeRequest:
        """Allocate an id and file the CR drafted for it."""
        ...

    def update(
        self,
        cr: ChangeRequest,
        message: str,
        *,
        by: str | None = None,
        expected: str | None = None,
    ) -> ChangeRequest:
        """Record a CR's new content as one change (none when it is already stored).

        `expected` is the revision (`changeflow.revisions.revision`) the caller read: when the
        stored CR is no longer that, the write is refused with `StaleChange`.
        """
        ...

    def get(self, id: str) -> ChangeRequest:
        """One CR."""
        ...

    def list(
        self, environment: str | None = None, open_only: bool = False
    ) -> builtins.list[ChangeRequest]:
        """The CRs of `environment` (every one when None), only the open ones (neither closed
        nor cancelled) with `open_only`, in id order.

        A backend answers without reading the CRs it leaves out, so a deploy that asks for its
        environment's open CRs pays the same after years of history (`changeflow.change_ids.
        listed` is the rule; `BadInput` for a name that cannot be an environment).
        """
        ...

    def deployments(self, sha256s: Collection[str]) -> builtins.list[ChangeRequest]:
        """The CRs whose bill of materials names one of the digests (`sha256:<hex>`), of any
        environment and state, in id order.

        A backend reads only the CRs its index by artifact digest names, and returns only
        those whose own record lists a digest asked about (`changeflow.deployed`): the index
        narrows, the CR decides, so a forged index entry cannot add a deployment. Cost follows
        the digests asked about, not the CRs ever filed (`BadInput` for a malformed digest).
        """
        ...

    def history(self, id: str) -> builtins.list[Commit]:
        """Every change of one CR, newest first."""
        ...

    def link(self, cr: ChangeRequest) -> str | None:
        """Where people find the CR's record (never with credentials in it)."""
        ...

    def decision(self, id: str) -> Approval | None:
        """A decision recorded in the backend itself (a ServiceNow approval), if any."""
        ...


@runtime_checkable
class IncidentStore(Protocol):
    """Where incidents are kept: the git change-management repo or ServiceNow's incidents."""

    def incidents(self) -> list[Incident]:
        """Every incident, open and closed."""
        ...

    def put_incidents(self, incidents: list[Incident], message: str) -> None:
        """Open or update incidents in one change."""
        ...


@dataclass(frozen=True)
class Stores:
    """The record stores a flow works with, opened once per run."""

    evidence: EvidenceStore
    inventory: Inventory
    changes: ChangeManagement
    incidents: IncidentStore
