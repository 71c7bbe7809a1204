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

from changeflow.canonical import canonical_json, digest
from changeflow.change_ids import CHANGE_ID_PATTERN
from changeflow.errors import BadInput
from changeflow.models import (
    SHA1_PATTERN,
    ChangeRequest,
    CustomerImpact,
    DeploymentImpact,
    Priority,
)
from changeflow.names import (
    ENVIRONMENT_PATTERN,
    MAX_NAME,
    REGION_PATTERN,
    validate_environment,
    validate_region,
    validate_repo_url,
)
from changeflow.project import Environments, EnvironmentSpec, load_environments, read_environments
from changeflow.redaction import URL_WITHOUT_CREDENTIALS, refuse_credentials
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


def _optional(pattern: str) -> str:
    """`pattern` (anchored) or the empty string: a form field that may stay empty."""
    return f"^(?:{pattern.removeprefix('^').removesuffix('$')})?$"


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

    # first: no later message may echo a token
    _check_credentials = field_validator("repo_url")(refuse_credentials)

    # after the credentials check (validators run in order): only a URL naming a repository,
    # never git's `ext::` transport or an option
    _check_repo_url = field_validator("repo_url")(validate_repo_url)


class PromotionRequest(BaseModel):
    """Promote what one environment has and the next lacks, under a promotion record."""

    source: str = Field(pattern=BRANCH_PATTERN, description="Where the artifacts come from.")
    target: str = Field(
        pattern=ENVIRONMENT_PATTERN,
        max_length=MAX_NAME,
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

    # strict names, checked before anything is read or written: both become labels and folders
    environment: str = Field(
        description="The environment (an inventory branch).",
        # the pattern in the form too, so the API refuses such a run before it exists
        json_schema_extra={"pattern": ENVIRONMENT_PATTERN, "maxLength": MAX_NAME},
    )
    region: str = Field(
        description="The region to deploy to.",
        json_schema_extra={"pattern": REGION_PATTERN, "maxLength": MAX_NAME},
    )
    force: bool = Field(default=False, description="Deploy even when nothing changed.")
    emergency: bool = Field(
        default=False, description="Go ahead without approval; the CR waits in review after."
    )
    change_request: str = Field(
        default="",
        pattern=CHANGE_REQUEST_PATTERN,
        description=(
            "Carry on with this CR: one left open by a crashed run, or one cancelled when its "
            "approval timed out and re-opened with `changeflow cr reopen`."
        ),
    )

    _check_environment = field_validator("environment")(validate_environment)
    _check_region = field_validator("region")(validate_region)


class DeploymentConfig(BaseModel):
    """How one deployment is made, from the worker's configuration, and what a CR records of it."""

    model_config = ConfigDict(frozen=True)

    spec: EnvironmentSpec
    environments_sha256: str | None = Field(
        default=None, description="sha256 of the environments file read; None without one."
    )

    def recorded_on(self, cr: ChangeRequest, command: list[str]) -> ChangeRequest:
        """`cr` with the command that runs, the environments file's digest, the policy and the
        approval rule."""
        policy = self.spec.policy.model_dump(mode="json")
        return cr.model_copy(
            update={
                "deploy_command": list(command),
                "environments_sha256": self.environments_sha256,
                "policy": policy,
                "policy_digest": digest(canonical_json(policy)),
                # who may approve it, and how many approvals it takes (issue 13)
                "approval_rule": self.spec.approval_rule,
            }
        )


def deployment_config(
    request: DeploymentRequest, *, command: list[str] | None = None, environments_file: str = ""
) -> DeploymentConfig:
    """Check a deployment request against the project: the one check, made once per run.

    The environment and region must be in the environments file (`environments_file`, else
    `CHANGEFLOW_ENVIRONMENTS`), and a deploy command must come from it or from `command`. Both
    come from the worker's (or the CLI's own) configuration, never from the request.

    Returns:
        How the environment is deployed (`command` in place of the file's), with the file's
        sha256.

    Raises:
        BadInput: for an unknown environment or region, or when no deploy command is configured.
    """
    file = _environments_file(environments_file)
    sha256 = None
    if file:
        environments, sha256 = read_environments(file)
        spec = environments.get(request.environment, request.region)
    else:
        spec = EnvironmentSpec(regions=[request.region])
    if command:
        spec = spec.model_copy(update={"deploy": list(command)})
    if not spec.deploy:
        raise BadInput(
            f"no deploy command configured for {request.environment}/{request.region}: "
            "set one in the environments file or pass --command"
        )
    return DeploymentConfig(spec=spec, environments_sha256=sha256)


def deployment_spec(
    request: DeploymentRequest, *, command: list[str] | None = None, environments_file: str = ""
) -> EnvironmentSpec:
    """How the environment is deployed: `deployment_config`'s spec.

    Raises:
        BadInput: for an unknown environment or region, or when no deploy command is configured.
    """
    return deployment_config(request, command=command, environments_file=environments_file).spec


class AuditRequest(BaseModel):
    """What to re-verify: what is deployed to an environment (or one region), or one CR."""

    environment: str = Field(
        default="",
        pattern=_optional(ENVIRONMENT_PATTERN),
        max_length=MAX_NAME,
        description="Verify what is deployed here.",
        json_schema_extra=_optional_environment_choices,
    )
    region: str = Field(
        default="",
        pattern=_optional(REGION_PATTERN),
        max_length=MAX_NAME,
        description="Only this region (empty: every one).",
    )
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
