"""Configuration from `CHANGEFLOW_*` environment variables, for use outside Prefect."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, SecretStr

from changeflow.errors import BadInput

__all__ = ["Settings"]


class Settings(BaseModel):
    """Everything the CLI needs to reach the evidence locker and the git remotes."""

    s3_endpoint: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    inventory_url: str | None = None
    change_repo_url: str | None = None
    environments_file: str | None = None
    home: Path = Path("~/.changeflow").expanduser()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(f"CHANGEFLOW_{name}", "").strip()
            return value or None

        secret_key, access_key = get("S3_SECRET_KEY"), get("S3_ACCESS_KEY")
        return cls(
            s3_endpoint=get("S3_ENDPOINT"),
            s3_bucket=get("S3_BUCKET"),
            s3_prefix=(get("S3_PREFIX") or "").strip("/"),
            s3_access_key=SecretStr(access_key) if access_key else None,
            s3_secret_key=SecretStr(secret_key) if secret_key else None,
            s3_region=get("S3_REGION") or "us-east-1",
            inventory_url=get("INVENTORY_URL"),
            change_repo_url=get("CHANGE_REPO_URL"),
            environments_file=get("ENVIRONMENTS"),
            home=Path(get("HOME") or "~/.changeflow").expanduser(),
        )

    def require(self, field: str) -> str:
        """Return a setting that must be present, or say which variable to set.

        Raises:
            BadInput: when the variable is unset.
        """
        value = getattr(self, field)
        if not value:
            raise BadInput(
                f'CHANGEFLOW_{field.upper()} is not set (run `eval "$(changeflow dev up)"` '
                "or export it)"
            )
        return str(value)
