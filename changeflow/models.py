"""The records changeflow keeps: assets, evidence, inventory entries, promotions, change requests.

Field names follow the DevSecOps reference implementation so its users feel at home.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from changeflow.approvers import Approval, ApprovalRule
from changeflow.authors import CommitAuthor
from changeflow.canonical import DIGEST_PATTERN, canonical_json, sha256_hex
from changeflow.change_content import Arrival, ChangeLogEntry, PullRequestLink
from changeflow.change_ids import CHANGE_ID_PATTERN
from changeflow.names import (
    check_aware_past,
    validate_asset_uri,
    validate_entry_name,
    validate_environment,
    validate_file_name,
    validate_region,
)
from changeflow.redaction import refuse_credentials
from changeflow.tested import TestDeployment

__all__ = [
    "Approval",
    "Asset",
    "Attachment",
    "ChangeLogEntry",
    "ChangeRequest",
    "ChangeState",
    "ChangeType",
    "CloseCategory",
    "CustomerImpact",
    "DeploymentImpact",
    "Evidence",
    "EvidenceDetails",
    "EvidenceOrigin",
    "EvidenceResult",
    "Finding",
    "InventoryEntry",
    "Priority",
    "Promotion",
    "Record",
    "Severity",
    "asset_id",
    "utcnow",
    "validate_entry_name",
]

SHA1_PATTERN = r"^[0-9a-f]{40}$"
_ID_RE = re.compile(r"^[0-9a-f]{64}$")


def utcnow() -> datetime:
    """Return the current time in UTC, to the second (ids must not depend on microseconds)."""
    return datetime.now(UTC).replace(microsecond=0)


def asset_id(uri: str) -> str:
    """Return an asset's id: the sha256 of its uri, as bare hex."""
    return sha256_hex(uri.encode("utf-8"))


class Record(BaseModel):
    """Base of every stored record: strict about unknown fields, JSON-friendly."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> bytes:
        """Return the record as canonical JSON."""
        return canonical_json(self.model_dump(mode="json", exclude_none=True))


class EvidenceResult(StrEnum):
    success = "success"
    failure = "failure"
    pending = "pending"


class Severity(StrEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"


class Asset(Record):
    """Something evidence is about, identified by its uri."""

    uri: str = Field(min_length=1)
    type: Literal["commit", "image", "artifact", "pipelinerun", "other"] = "other"
    related: list[str] = Field(default_factory=list, description="Uris of related assets.")

    _check_uri = field_validator("uri")(validate_asset_uri)

    @field_validator("related")
    @classmethod
    def _related(cls, value: list[str]) -> list[str]:
        return [validate_asset_uri(uri) for uri in value]

    @property
    def id(self) -> str:
        return asset_id(self.uri)

    @classmethod
    def for_uri(cls, uri: str, related: list[str] | None = None) -> Asset:
        """Build an asset, guessing its type from the uri's scheme."""
        kind: Literal["commit", "image", "artifact", "pipelinerun", "other"] = "other"
        if uri.startswith("docker://"):
            kind = "image"
        elif uri.startswith("artifact://"):
            kind = "artifact"
        elif uri.startswith("pipelinerun://"):
            kind = "pipelinerun"
        elif re.search(r"#[0-9a-f]{40}$", uri):
            kind = "commit"
        return cls(uri=uri, type=kind, related=sorted(set(related or [])))


class EvidenceOrigin(Record):
    scope: str = Field(min_length=1, description="The CI or CD run the evidence belongs to.")
    pipeline_id: str = "changeflow"
    pipeline_run_id: str = ""
    pipeline_run_url: str | None = None


class EvidenceDetails(Record):
    result: EvidenceResult
    tool: str = Field(min_length=1)
    summary: str | None = Field(default=None, description="One line on what the tool reported.")


class Attachment(Record):
    hash: str = Field(pattern=DIGEST_PATTERN)
    url: str
    label: str | None = None
    size: int | None = None


class Finding(Record):
    id: str
    severity: Severity
    due_date: str | None = None
    found_status: Literal["new", "existing", "fixed"] = "new"
    has_exempt: bool = False
    url: str | None = None
    description: str | None = None


class Evidence(Record):
    """One check's result about one or more assets (format version 2)."""

    version: Literal["2"] = "2"
    id: str = ""
    date: datetime
    evidence_type_id: str = Field(pattern=r"^[a-z0-9_.\-]+$")
    evidence_type_version: str = "1.0.0"
    origin: EvidenceOrigin
    details: EvidenceDetails
    assets: list[str] = Field(min_length=1, description="Asset ids.")
    attachments: list[Attachment] = Field(default_factory=list)
    issues: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)

    # naive or far-future dates are refused on write and on read: a naive one cannot be
    # compared with the others, a future one would stay "the latest" and hide later records
    _check_date = field_validator("date")(check_aware_past)

    @field_validator("assets")
    @classmethod
    def _asset_ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _ID_RE.match(item):
                raise ValueError(f"asset id must be 64 hex characters: {item!r}")
        return sorted(set(value))

    def computed_id(self) -> str:
        """Return the sha256 of the record's canonical JSON without `id`."""
        body = self.model_dump(mode="json", exclude_none=True, exclude={"id"})
        return sha256_hex(canonical_json(body))

    def sealed(self) -> Evidence:
        """Return a copy whose `id` is set from its content."""
        return self.model_copy(update={"id": self.computed_id()})

    def is_sealed(self) -> bool:
        return self.id == self.computed_id()

    @property
    def result(self) -> EvidenceResult:
        return self.details.result


class InventoryEntry(Record):
    """One built artifact as recorded in the inventory."""

    name: str
    artifact: str = Field(min_length=1, description="Where the artifact can be fetched.")
    version: str = Field(min_length=1)
    type: str = Field(min_length=1)
    sha256: str = Field(pattern=DIGEST_PATTERN)
    repository_url: str = Field(min_length=1)
    commit_sha: str = Field(pattern=SHA1_PATTERN)
    build_number: str = Field(min_length=1)
    pipeline_run_id: str = Field(min_length=1, description="The CI scope of its evidence.")
    provenance: str = Field(min_length=1, description="The artifact's asset uri.")
    signature: str | None = None
    app_artifacts: dict[str, Any] = Field(default_factory=dict)
    author: CommitAuthor | None = Field(default=None, description="Its commit's, for approvals.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_entry_name(value)

    _check_provenance = field_validator("provenance")(validate_asset_uri)
    # shown in every CR and trace: a token in it would be published with them
    _check_repository_url = field_validator("repository_url")(refuse_credentials)

    @field_validator("app_artifacts")
    @classmethod
    def _app_artifacts(cls, value: dict[str, Any]) -> dict[str, Any]:
        # the file name becomes a path on the deploying worker: one plain name, nothing more
        if "filename" in value:
            filename = value["filename"]
            if not isinstance(filename, str):
                raise ValueError("app_artifacts.filename must be a string")
            validate_file_name(filename)
        return value

    @property
    def commit_uri(self) -> str:
        return f"{self.repository_url}#{self.commit_sha}"


class Priority(StrEnum):
    critical = "critical"
    high = "high"
    moderate = "moderate"
    low = "low"
    planning = "planning"


class CustomerImpact(StrEnum):
    critical = "critical"
    high = "high"
    moderate = "moderate"
    low = "low"
    no_impact = "no_impact"


class DeploymentImpact(StrEnum):
    small = "small"
    large = "large"


class Promotion(Record):
    """A request to move artifacts from one environment to another."""

    id: str = Field(pattern=r"^[A-Za-z0-9._\-]+$")
    source: str = Field(min_length=1)
    target: str = Field(min_length=1)
    date: datetime = Field(default_factory=utcnow)
    priority: Priority = Priority.moderate
    assigned_to: str = Field(min_length=1)
    description: str = Field(min_length=1)
    purpose: str = ""
    impact: str = ""
    customer_impact: CustomerImpact = CustomerImpact.no_impact
    deployment_impact: DeploymentImpact = DeploymentImpact.small
    backout_plan: str = Field(min_length=1)
    emergency: bool = False
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    entries: list[str] = Field(default_factory=list, description="Entry names it promotes.")
    source_commit: str | None = None
    gate_overrides: list[str] = Field(
        default_factory=list,
        description="Why the promotion gate refused each entry an emergency promoted anyway.",
    )
    deletions: list[str] = Field(default_factory=list, description="Entries it removes.")
    # issue 14: recorded on its branch when it is opened as a pull request; a merge keeps it
    pull_request: PullRequestLink | None = None

    # an environment: it names a branch, and the promotion's own branch under promotion/
    _check_target = field_validator("target")(validate_environment)


class ChangeType(StrEnum):
    standard = "standard"
    emergency = "emergency"


class ChangeState(StrEnum):
    new = "new"
    assess = "assess"
    authorize = "authorize"
    scheduled = "scheduled"
    implement = "implement"
    review = "review"
    closed = "closed"
    cancelled = "cancelled"


class CloseCategory(StrEnum):
    successful = "successful"
    successful_issues = "successful_issues"
    unsuccessful = "unsuccessful"
    cancelled = "cancelled"


class ChangeRequest(Record):
    """A change request for one deployment to one environment and region."""

    id: str = Field(pattern=CHANGE_ID_PATTERN)
    environment: str
    region: str
    type: ChangeType = ChangeType.standard
    state: ChangeState = ChangeState.new
    created: datetime = Field(default_factory=utcnow)
    deployment_run_id: str = Field(description="The deploy flow run that filed it.")
    flow_run_id: str | None = Field(default=None, description="Prefect flow run to resume.")
    # the promotion's fields
    promotion_id: str | None = None
    priority: Priority = Priority.moderate
    assigned_to: str = ""
    description: str = ""
    purpose: str = ""
    impact: str = ""
    customer_impact: CustomerImpact = CustomerImpact.no_impact
    deployment_impact: DeploymentImpact = DeploymentImpact.small
    backout_plan: str = ""
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    outage_duration_minutes: int = 0
    # what changes, and the facts behind it
    deployment_ready: bool = False
    readiness_reasons: list[str] = Field(default_factory=list)
    inventory_commit: str = ""
    previous_inventory_commit: str | None = None
    delta: list[str] = Field(default_factory=list)
    deletions: list[str] = Field(default_factory=list)
    bom: dict[str, str] = Field(default_factory=dict, description="Entry name -> sha256.")
    change_log: list[ChangeLogEntry] = Field(default_factory=list)
    evidence_summary_url: str | None = None
    evidence_summary_sha256: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    evidence_count: int = 0
    failed_evidence: list[str] = Field(default_factory=list)
    acceptance_evidence: list[str] = Field(default_factory=list)
    # what it runs under (the worker's configuration): the deploy argv, the environments file's
    # sha256, the readiness policy in force and the sha256 of its canonical JSON
    deploy_command: list[str] = Field(default_factory=list)
    environments_sha256: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    policy: dict[str, Any] = Field(default_factory=dict)
    policy_digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    approvals: list[Approval] = Field(default_factory=list)
    close_category: CloseCategory | None = None
    close_notes: str = ""
    history: list[dict[str, str]] = Field(default_factory=list)
    # issue 14: what the promotion gate let through on an emergency, and where each artifact of
    # the delta was deployed before (its test deployments)
    gate_overrides: list[str] = Field(default_factory=list)
    test_deployments: list[TestDeployment] = Field(default_factory=list)
    # the promotions that brought the delta (newest first), and how each entry arrived
    promotions: list[Promotion] | None = None
    arrivals: list[Arrival] | None = None
    # issue 13: its environment's approval rule when filed; its delta's commit authors
    approval_rule: ApprovalRule | None = None
    delta_authors: list[CommitAuthor] = Field(default_factory=list)
    # issue 12: the trust file judged under, and the signed decision (a SLSA VSA in the locker)
    trust_sha256: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    decision_attestation: tuple[str, str] | None = Field(default=None, description="url, sha256")

    # both become label and folder names: checked on every read too, for a record edited by hand
    _check_environment = field_validator("environment")(validate_environment)
    _check_region = field_validator("region")(validate_region)

    @property
    def is_open(self) -> bool:
        return self.state not in (ChangeState.closed, ChangeState.cancelled)

    @property
    def decision(self) -> Approval | None:
        """The latest approval decision, if any."""
        return self.approvals[-1] if self.approvals else None
