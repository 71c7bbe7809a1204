"""Real services for the suite: one SeaweedFS and one Prefect server per session."""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# before anything imports prefect: its settings are read once, at import
_PREFECT_HOME = tempfile.mkdtemp(prefix="changeflow-tests-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
os.environ["CHANGEFLOW_HOME"] = tempfile.mkdtemp(prefix="changeflow-tests-home-")
os.environ.pop("PREFECT_API_URL", None)
for _name in list(os.environ):
    if _name.startswith("CHANGEFLOW_") and _name != "CHANGEFLOW_HOME":
        del os.environ[_name]

import pytest  # noqa: E402
from prefect_aws import AwsCredentials  # noqa: E402
from prefect_aws.client_parameters import AwsClientParameters  # noqa: E402

from blocks.evidence_locker import EvidenceLocker  # noqa: E402
from blocks.local_stack import (  # noqa: E402
    init_bare_repo,
    start_prefect_server,
    start_seaweedfs,
    stop_process,
)

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "tool-outputs"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def credentials(self, secret_key: str | None = None) -> AwsCredentials:
        return AwsCredentials(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name="us-east-1",
            aws_client_parameters=AwsClientParameters(endpoint_url=self.endpoint),
        )

    def locker(self, bucket: str, **kwargs: object) -> EvidenceLocker:
        return EvidenceLocker(bucket=bucket, credentials=self.credentials(), **kwargs)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    secret = secrets.token_hex(20)
    process, endpoint = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), "changeflow", secret)
    yield S3Server(endpoint, "changeflow", secret)
    stop_process(process.pid)


def new_bucket() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def locker(s3_server: S3Server) -> EvidenceLocker:
    """A fresh bucket with Object Lock on (short retention: SeaweedFS keeps test data)."""
    locker = s3_server.locker(new_bucket(), retention_days=1)
    locker.create_bucket()
    return locker


@pytest.fixture
def unlocked_locker(s3_server: S3Server) -> EvidenceLocker:
    """A fresh bucket without Object Lock, where objects can be overwritten out of band."""
    locker = s3_server.locker(new_bucket())
    locker.client.create_bucket(Bucket=locker.bucket)
    return locker


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A started Prefect server: flows pause in one process and resume from another."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    process, api = start_prefect_server(tmp_path_factory.mktemp("prefect-server"))
    os.environ["PREFECT_API_URL"] = api
    with temporary_settings(updates={PREFECT_API_URL: api}):
        yield api
        # send the last run logs while the server still listens
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
    os.environ.pop("PREFECT_API_URL", None)
    stop_process(process.pid)


@pytest.fixture
def stack_env(
    s3_server: S3Server, prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """`CHANGEFLOW_*` variables for a fresh bucket and fresh git remotes, as `dev up` sets them."""
    bucket = new_bucket()
    s3_server.locker(bucket).create_bucket()
    env = {
        "CHANGEFLOW_S3_ENDPOINT": s3_server.endpoint,
        "CHANGEFLOW_S3_BUCKET": bucket,
        "CHANGEFLOW_S3_ACCESS_KEY": s3_server.access_key,
        "CHANGEFLOW_S3_SECRET_KEY": s3_server.secret_key,
        "CHANGEFLOW_INVENTORY_URL": init_bare_repo(tmp_path / "remotes" / "inventory.git"),
        "CHANGEFLOW_CHANGE_REPO_URL": init_bare_repo(tmp_path / "remotes" / "changes.git"),
        "CHANGEFLOW_ENVIRONMENTS": "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
