"""What a person asks of each flow: the parameters of a build, a promotion, a deployment, an audit.

These models are the flows' parameters, so Prefect's UI renders them as forms. The environments
and regions of the project's `environments.toml` (`CHANGEFLOW_ENVIRONMENTS`, read when the
deployments are registered) become the forms' choices: the Prefect API then refuses a run with
an unknown environment, or a region the environment does not deploy to, with the reason, before
the run exists. A run started without those choices (a stale registration, a direct call) is
checked again at the deploy flow's first step, before anything is read or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from changeflow.change_ids import CHANGE_ID_PATTERN
from changeflow.canonical import canonical_json, digest
from changeflow.errors import BadInput
from changeflow.models import (
    SHA1_PATTERN,
    ChangeRequest,
    CustomerImpact,
    DeploymentImpact,
    Priority,
)
from changeflow.project import Environments, EnvironmentSpec, load_environments, read_environments
from changeflow.redaction import CREDENTIALS_HELP, URL_WITHOUT_CREDENTIALS, has_credentials, redact
from changeflow.settings import Settings

__all__ = [
    "DEFAULT_STORES",
    "AuditRequest",
    "BuildRequest",
    "DeploymentConfig",
    "DeploymentRequest",
    "PromotionRequest",
    "RecordStores",
    "deployment_config",
    "deployment_spec",
    "project_environments",
]

# a git branch name, loosely: what an inventory branch may be called
BRANCH_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/\-]*$"
# empty, or a CR id: the forms render a plain text field (not "a string or None")
CHANGE_REQUEST_PATTERN = f"^({CHANGE_ID_PATTERN.strip('^$')})?$"


def _environments_file(path: str = "") -> Path | None:
    chosen = path or Settings.from_env().environments_file
    return Path(chosen) if chosen else None


def project_environments(path: str = "") -> Environments:
    """The project's environments: the file `path`, else `CHANGEFLOW_ENVIRONMENTS`.

    None configured: no environments.

    Raises:
        BadInput: when the file is missing or malformed.
    """
    file = _environments_file(path)
    return load_environments(file) if file else Environments()


def _places() -> dict[str, list[str]]:
    """Each environment of `CHANGEFLOW_ENVIRONMENTS` with its regions, sorted by name.

    Empty when the variable is unset or the file unreadable: the forms then take free text, and
    the deploy flow reports the file's problem when it loads it.
    """
    try:
        environments = project_environments()
    except BadInput:
        return {}
    return {name: list(spec.regions) for name, spec in sorted(environments.environments.items())}


def _environment_choices(schema: dict[str, Any]) -> None:
    if places := _places():
        schema["enum"] = list(places)


def _optional_environment_choices(schema: dict[str, Any]) -> None:
    if places := _places():
        schema["enum"] = ["", *places]


def _deployment_choices(schema: dict[str, Any]) -> None:
    # one reading of the file for the whole form: the environments, the regions, and (JSON
    # Schema's if/then) each environment tied to its own regions, so the API refuses a region
    # the chosen environment does not deploy to
    if places := _places():
        fields = schema["properties"]
        fields["environment"]["enum"] = list(places)
        fields["region"]["enum"] = sorted({r for regions in places.values() for r in regions})
        schema["allOf"] = [
            {
                "if": {"properties": {"environment": {"const": name}}},
                "then": {"properties": {"region": {"enum": regions}}},
            }
            for name, regions in places.items()
        ]


class RecordStores(BaseModel):
    """Which saved blocks hold the records; an empty name reads the `CHANGEFLOW_*` variables.

    A name with no saved block behind it falls back to the variables too.
    """

    evidence_locker: str = Field(
        default="evidence-locker", description="Saved evidence locker block."
    )
    inventory: str = Field(default="inventory", description="Saved inventory block.")
    change_management: str = Field(
        default="change-management", description="Saved change-management block."
    )
    incidents: str = Field(
        default="incidents",
        description="Saved incident store; none saved: beside the change requests.",
    )

    @classmethod
    def from_env(cls) -> RecordStores:
        """No saved blocks: every store from the `CHANGEFLOW_*` variables (as the CLI does)."""
        return cls(evidence_locker="", inventory="", change_management="", incidents="")


DEFAULT_STORES = RecordStores()


class BuildRequest(BaseModel):
    """Build one commit of an application, run its checks and record its artifacts."""

    repo_url: str = Field(
        min_length=1,
        description="Git URL of the application, without credentials (a credential helper).",
        # the API refuses such a run before it exists, so no token is kept as a parameter
        json_schema_extra={"pattern": URL_WITHOUT_CREDENTIALS},
    )
    commit_sha: str = Field(pattern=SHA1_PATTERN, description="The commit to build (40 hex).")
    branch: str = Field(
        default="master", pattern=BRANCH_PATTERN, description="The inventory branch CI writes."
    )
    build_number: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._\-]*$",
        description=(
            "The CI system's build id, recorded on each entry; a rerun of the same build carries "
            "on without recording its checks twice. Empty: the build's UTC time."
        ),
    )

    @field_validator("repo_url")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        if has_credentials(value):
            raise ValueError(f"{redact(value)} carries credentials: {CREDENTIALS_HELP}")
        return value


class PromotionRequest(BaseModel):
    """Promote what one environment has and the next lacks, under a promotion record."""

    source: str = Field(pattern=BRANCH_PATTERN, description="Where the artifacts come from.")
    target: str = Field(
        pattern=BRANCH_PATTERN,
        description="The environment they go to.",
        json_schema_extra=_environment_choices,
    )
    priority: Priority = Field(description="How urgent the change is.")
    assigned_to: str = Field(min_length=1, description="Who owns the change.")
    description: str = Field(min_length=1, description="What the change is.")
    backout_plan: str = Field(min_length=1, description="How to undo it.")
    purpose: str = Field(default="", description="Why it is made.")
    impact: str = Field(default="", description="What it affects.")
    customer_impact: CustomerImpact = CustomerImpact.no_impact
    deployment_impact: DeploymentImpact = DeploymentImpact.small
    include: list[str] = Field(default_factory=list, description="Globs of entries to promote.")
    exclude: list[str] = Field(default_factory=list, description="Globs of entries to leave.")
    emergency: bool = Field(default=False, description="Deploy without waiting for approval.")
    review: bool = Field(default=False, description="Leave it open for approval (a PR/MR).")

    @model_validator(mode="after")
    def _distinct(self) -> PromotionRequest:
        if self.source == self.target:
            raise ValueError("source and target must differ")
        return self


class DeploymentRequest(BaseModel):
    """Deploy what changed in an environment to one of its regions, under a change request."""

    # the deploy command and the environments file (its policy) are the worker's configuration,
    # never a run's parameters: a run that names them is refused
    model_config = ConfigDict(extra="forbid", json_schema_extra=_deployment_choices)

    environment: str = Field(
        pattern=BRANCH_PATTERN, description="The environment (an inventory branch)."
    )
    region: str = Field(min_length=1, description="The region to deploy to.")
    force: bool = Field(default=False, description="Deploy even when nothing changed.")
    emergency: bool = Field(
        default=False, description="Go ahead without approval; the CR waits in review after."
    )
    change_request: str = Field(
        default="",
        pattern=CHANGE_REQUEST_PATTERN,
        description="Carry on with this CR (approved, say, after its run timed out).",
    )


def deployment_spec(request: DeploymentRequest) -> EnvironmentSpec:
    """Check a deployment request against the project: the one check, made once per run.

    The environment and region must be in the environments file (when one is configured), and
    a deploy command must come from it or from the request.

    Returns:
        How the environment is deployed, the request's command in place of the file's.

    Raises:
        BadInput: for an unknown environment or region, or when no deploy command is configured.
    """
    file = _environments_file(request.environments_file)
    if file:
        spec = load_environments(file).get(request.environment, request.region)
    else:
        spec = EnvironmentSpec(regions=[request.region])
    if request.command:
        spec = spec.model_copy(update={"deploy": request.command})
    if not spec.deploy:
        raise BadInput(
            f"no deploy command configured for {request.environment}/{request.region}: "
            "set one in the environments file or pass --command"
        )
    return spec


class AuditRequest(BaseModel):
    """What to re-verify: what is deployed to an environment (or one region), or one CR."""

    environment: str = Field(
        default="",
        description="Verify what is deployed here.",
        json_schema_extra=_optional_environment_choices,
    )
    region: str = Field(default="", description="Only this region (empty: every one).")
    change_request: str = Field(
        default="",
        pattern=CHANGE_REQUEST_PATTERN,
        description="Verify what this CR was approved on.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> AuditRequest:
        if bool(self.environment) == bool(self.change_request):
            raise ValueError("give either an environment (and optionally a region) or a CR id")
        if self.region and not self.environment:
            raise ValueError("a region needs its environment")
        return self
