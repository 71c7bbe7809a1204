"""Project files: an application's `changeflow.toml` and the `environments.toml` of a deployment.

Both are validated when they are loaded, so a typo is found before a flow reaches it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from changeflow.approvers import ApprovalRule, Approver
from changeflow.canonical import digest
from changeflow.errors import BadInput
from changeflow.incidents import GracePeriods
from changeflow.names import validate_environment, validate_region
from changeflow.readiness import ReadinessPolicy
from changeflow.reports import ReportFormat, Thresholds
from changeflow.windows import EnvironmentWindows

__all__ = [
    "AppConfig",
    "ArtifactSpec",
    "CheckSpec",
    "CommandReport",
    "EnvironmentSpec",
    "Environments",
    "expand_command",
    "load_app_config",
    "load_environments",
    "parse_environments",
    "read_environments",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# a Prefect block's name: lowercase letters, digits and dashes
_BLOCK_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# the pipeline's own configuration: never handed to a command, whatever a file says
_PIPELINE_PREFIXES = ("CHANGEFLOW_", "PREFECT_")


def _variable(name: str) -> str:
    if not _VARIABLE_RE.match(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    if name.upper().startswith(_PIPELINE_PREFIXES) or name == "PATH":
        raise ValueError(f"{name} is the pipeline's own configuration: it is never passed on")
    return name


def _pass_env(names: list[str]) -> list[str]:
    return [_variable(n) for n in names]


def _secrets(secrets: dict[str, str]) -> dict[str, str]:
    for variable, block in secrets.items():
        _variable(variable)
        if not _BLOCK_NAME_RE.match(block):
            raise ValueError(f"{variable}: {block!r} is not a Secret block name")
    return secrets


def _argv(value: list[str]) -> list[str]:
    if not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError("a command is a non-empty list of non-empty strings")
    return value


class ArtifactSpec(_Strict):
    name: str = Field(description="Entry name below the application, e.g. 'wheel'.")
    glob: str = Field(description="Where the build leaves it, relative to the repo.")
    type: str = "file"


class CheckSpec(_Strict):
    """One CI check: a command that leaves a report that becomes evidence."""

    name: str
    command: list[str]
    report: str = Field(description="Report path relative to the repo.")
    format: ReportFormat
    evidence_type: str
    tool: str
    stdout: bool = Field(default=False, description="The report is the command's stdout.")
    thresholds: Thresholds = Field(default_factory=Thresholds)

    _check_command = field_validator("command")(_argv)


class AppConfig(_Strict):
    """An application's `changeflow.toml`."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    build: list[str]
    artifacts: list[ArtifactSpec] = Field(min_length=1)
    checks: list[CheckSpec] = Field(default_factory=list)

    _check_build = field_validator("build")(_argv)


class CommandReport(_Strict):
    """A command whose report becomes evidence (acceptance tests)."""

    command: list[str]
    report: str
    format: ReportFormat = ReportFormat.junit
    tool: str = "acceptance-tests"

    _check_command = field_validator("command")(_argv)


# a DNS name: labels of letters, digits and inner hyphens, joined by dots
_LABEL = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def _hostname(host: str) -> str:
    if not _HOSTNAME.match(host.lower()):
        raise ValueError(f"change_log_hosts: not a host name: {host!r}")
    return host.lower()


class EnvironmentSpec(_Strict):
    """How one environment is deployed."""

    regions: list[str] = Field(min_length=1)
    deploy: list[str] | None = None
    acceptance: CommandReport | None = None
    backout: list[str] | None = None
    approval_timeout_s: int = Field(default=3600, gt=0)
    policy: ReadinessPolicy = Field(default_factory=ReadinessPolicy)
    change_windows: EnvironmentWindows | None = Field(
        default=None, description="When deployments may run; none means always."
    )
    grace_periods: GracePeriods = Field(default_factory=GracePeriods)
    pass_env: list[str] = Field(
        default_factory=list,
        description="Worker variables the deploy, backout and acceptance commands also get.",
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Variable -> name of the Prefect Secret block whose value it gets.",
    )
    promotion_gate: Literal["every_region", "any_region"] = Field(
        default="every_region",
        description="Promoting INTO this environment takes entries tested in every (or any one) "
        "region of the source environment.",
    )
    earlier_acceptance: Literal["block", "warn"] = Field(
        default="block",
        description="A failed acceptance of the same artifact in another environment blocks "
        "auto-approval (or only warns).",
    )
    change_log_hosts: list[str] | None = Field(
        default=None,
        description="Hosts whose repositories a CR's change log reads (https, http, ssh); none "
        "set: any repository an entry names, a path on the worker included.",
    )
    approvers: list[Approver] = Field(
        default_factory=list,
        description="Who may approve: identity and SSH ed25519 public key (allowed_signers).",
    )
    approvals_required: int = Field(default=1, ge=1, description="Distinct approvers needed.")
    unsigned_approvals: bool | None = Field(
        default=None, description="Accept unsigned approvals (default: when nobody is listed)."
    )

    _check_regions = field_validator("regions")(lambda v: [validate_region(r) for r in v])
    _check_deploy = field_validator("deploy", "backout")(lambda v: None if v is None else _argv(v))
    _check_pass_env = field_validator("pass_env")(_pass_env)
    _check_secrets = field_validator("secrets")(_secrets)
    _check_hosts = field_validator("change_log_hosts")(
        lambda v: None if v is None else [_hostname(h) for h in v]
    )

    @model_validator(mode="after")
    def _secrets_are_not_passed(self) -> EnvironmentSpec:
        if both := sorted(set(self.pass_env) & set(self.secrets)):
            raise ValueError(f"{', '.join(both)}: both passed and a secret; choose one")
        self.approval_rule  # noqa: B018 - refused at load time, not at the first approval
        return self

    @property
    def approval_rule(self) -> ApprovalRule:
        """Who may approve this environment's changes, and how many approvals it takes."""
        return ApprovalRule(
            approvers=self.approvers,
            approvals_required=self.approvals_required,
            unsigned_approvals=self.unsigned_approvals,
        )


class Environments(_Strict):
    """The `environments.toml` of a deployment: every environment changeflow deploys to."""

    environments: dict[str, EnvironmentSpec] = Field(default_factory=dict)

    # each name becomes a branch, labels and folders: the file is refused before any of those
    _check_names = field_validator("environments")(
        lambda v: {validate_environment(name): spec for name, spec in v.items()}
    )

    def get(self, environment: str, region: str | None = None) -> EnvironmentSpec:
        """Return an environment's spec, checking the region when one is given.

        Raises:
            BadInput: for an unknown environment or region.
        """
        spec = self.environments.get(environment)
        if spec is None:
            known = ", ".join(sorted(self.environments)) or "none"
            raise BadInput(f"unknown environment {environment!r} (known: {known})")
        if region is not None and region not in spec.regions:
            raise BadInput(
                f"unknown region {region!r} for {environment} (known: {', '.join(spec.regions)})"
            )
        return spec

    def strictest_grace_periods(self) -> GracePeriods:
        """The shortest grace period of each severity over every environment.

        What CI gives the incidents it opens: it records entries on `master`, which feeds every
        environment, so a finding is due as soon as the strictest environment wants it fixed.
        With no environment configured, the default grace periods.
        """
        periods = [spec.grace_periods for spec in self.environments.values()]
        if not periods:
            return GracePeriods()
        fields = GracePeriods.model_fields
        return GracePeriods(**{name: min(getattr(p, name) for p in periods) for name in fields})


def _load(text: str, where: str, model: type[BaseModel]) -> Any:
    try:
        data = tomllib.loads(text)
        return model.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{where}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top)"
        # a model's own check says "Value error, <why>": the why is the message
        message = str(first["msg"]).removeprefix("Value error, ")
        raise BadInput(f"{where}: {loc}: {message}") from exc


def load_app_config(path: Path) -> AppConfig:
    """Load and validate an application's `changeflow.toml`."""
    if not path.is_file():
        raise BadInput(f"no changeflow.toml at {path}")
    config: AppConfig = _load(path.read_text("utf-8"), str(path), AppConfig)
    return config


def load_environments(path: Path) -> Environments:
    """Load and validate an `environments.toml`.

    Raises:
        BadInput: when the file is missing or malformed.
    """
    return read_environments(path)[0]


def read_environments(path: Path) -> tuple[Environments, str]:
    """Load and validate an `environments.toml`, with the sha256 of the bytes read.

    One read for both, so the digest a CR records is of the file that was applied.

    Raises:
        BadInput: when the file is missing or malformed.
    """
    if not path.is_file():
        raise BadInput(f"no environments file at {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text") from exc
    return parse_environments(text, str(path)), digest(data)


def parse_environments(text: str, where: str = "environments.toml") -> Environments:
    """Parse and validate the text of an `environments.toml`.

    Raises:
        BadInput: one line naming the file and the field that is wrong.
    """
    config: Environments = _load(text, where, Environments)
    return config


def expand_command(command: list[str], values: dict[str, str]) -> list[str]:
    """Fill `{environment}`-style placeholders in each argument; other braces stay as they are."""
    out = []
    for arg in command:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out
