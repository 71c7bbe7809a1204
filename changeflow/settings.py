"""Configuration from `CHANGEFLOW_*` environment variables, for use outside Prefect."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from changeflow.errors import BadInput

__all__ = ["Settings"]

_PREFIX = "CHANGEFLOW_"


class Settings(BaseSettings):
    """Everything the CLI needs to reach the evidence locker and the git remotes.

    Each field is read from `CHANGEFLOW_<FIELD>` (the environments file from
    `CHANGEFLOW_ENVIRONMENTS`); a blank variable counts as unset.
    """

    # Other CHANGEFLOW_* variables (the deploy command's CHANGEFLOW_REGION...) are not settings;
    # the defaults are valid as written, and "" must stay a default, not read as unset.
    model_config = SettingsConfigDict(
        env_prefix=_PREFIX, extra="ignore", populate_by_name=True, validate_default=False
    )

    s3_endpoint: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    # seconds a store that stops answering is waited on, over all attempts
    s3_timeout: float = Field(default=30.0, gt=0, le=3600)
    inventory_url: str | None = None
    change_repo_url: str | None = None
    environments_file: str | None = Field(
        default=None,
        # An alias replaces the prefixed name, so the variable is spelled out in full.
        validation_alias=f"{_PREFIX}ENVIRONMENTS",
    )
    home: Path = Path("~/.changeflow").expanduser()
    # signing (docs/attestations.md): the pipeline's ed25519 key, from a PEM file or a Prefect
    # Secret block of that name, and the trust file the records are judged under
    signing_key_file: Path | None = None
    signing_key_secret: str | None = None
    # per role, so CI and deploy sign with different keys even in one process (the demo);
    # each falls back to the shared key above
    ci_signing_key_file: Path | None = None
    deploy_signing_key_file: Path | None = None
    trust_file: Path | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise PydanticUseDefault
        return value.strip() if isinstance(value, str) else value

    @field_validator("s3_prefix")
    @classmethod
    def _prefix_has_no_slashes_around(cls, value: str) -> str:
        # Keys are joined with "/" later: "evidence/" and "evidence" are the same prefix.
        return value.strip("/")

    @field_validator("s3_endpoint")
    @classmethod
    def _endpoint_is_a_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("home")
    @classmethod
    def _home_expanded(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `env` (default: the process environment) and nothing else.

        Raises:
            BadInput: a variable holds a value its setting cannot take.
        """
        source = _Variables(cls, os.environ if env is None else env)
        try:
            return cls(_build_sources=((source,), {}))
        except ValidationError as exc:
            raise BadInput(_explain(exc)) from None

    def require(self, field: str) -> str:
        """Return a setting that must be present, or say which variable to set.

        Raises:
            BadInput: when the variable is unset.
        """
        value = getattr(self, field)
        if not value:
            raise BadInput(
                f'{_PREFIX}{field.upper()} is not set (run `eval "$(changeflow dev up)"` '
                "or export it)"
            )
        return str(value)


class _Variables(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping of variables.

    So an explicit mapping (a dev stack's variables, a test's) is read by the same rules as the
    process environment, and the process environment cannot leak into it.
    """

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        self._variables = variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._variables, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _explain(exc: ValidationError) -> str:
    """One line naming the variable and the problem, never the value of a credential."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "settings"
        variable = name if name.startswith(_PREFIX) else f"{_PREFIX}{name.upper()}"
        problems.append(f"{variable}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
