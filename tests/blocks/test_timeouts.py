"""A server that accepts connections and never answers: every call ends, with one clear line.

Each call gets a short bound of its own (the stores' defaults are 30 s, checked without waiting
them out), and each test's timeout is the bound the issue asks for (60 s); nothing asserts a
duration beyond "it ended". The silent server is a TCP listener in a thread of the test.
"""

from __future__ import annotations

import os
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from prefect import flow, task
from stack_support import run_changeflow

from blocks.evidence_locker import EvidenceLocker
from blocks.gitrepo import mirror
from changeflow.errors import ServiceTimeout, StorageUnavailable
from changeflow.settings import Settings
from tasks.io import IO


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGEFLOW_")}
    return {**env, "CHANGEFLOW_HOME": str(tmp_path / "home"), **settings}


def _one_line(done: CompletedProcess[str]) -> str:
    """The one line a failed command printed (exit 1: the work ran, the service did not)."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.timeout(60)
def test_an_evidence_read_ends(silent: str, tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        CHANGEFLOW_S3_ENDPOINT=f"http://{silent}",
        CHANGEFLOW_S3_BUCKET="evidence",
        CHANGEFLOW_S3_ACCESS_KEY="changeflow",
        CHANGEFLOW_S3_SECRET_KEY="not-a-real-secret",
        CHANGEFLOW_S3_TIMEOUT="3",
    )
    line = _one_line(run_changeflow("evidence", "get", "c" * 64, env=env))
    assert silent in line and "unreachable" in line and "timeout" in line.lower(), line
    assert "not-a-real-secret" not in line


@pytest.mark.timeout(60)
def test_an_inventory_fetch_over_http_ends(silent: str, tmp_path: Path) -> None:
    url = f"http://bot:s3cr3t-token@{silent}/inventory.git"
    # git's own knob for its stall bound (changeflow's default: 30 s)
    env = _env(tmp_path, CHANGEFLOW_INVENTORY_URL=url, GIT_HTTP_LOW_SPEED_TIME="2")
    line = _one_line(
        run_changeflow("inventory", "get", "app/bin", "--environment", "prod", env=env)
    )
    assert "unreachable" in line and "too slow" in line, line
    assert "s3cr3t-token" not in line


def test_the_default_bounds_stay_within_a_minute() -> None:
    settings = Settings.from_env({})
    assert settings.s3_timeout == 30
    assert EvidenceLocker(bucket="b").timeout == 30
    assert "http.lowSpeedTime=30" in " ".join(mirror._NETWORK_CONFIG)


_CALLS: list[str] = []


@task(**{**IO, "retry_delay_seconds": 0})
def _failing(kind: str) -> None:
    _CALLS.append(kind)
    error = ServiceTimeout if kind == "silent" else StorageUnavailable
    raise error(f"{kind} store")


@flow
def _read(kind: str) -> None:
    _failing(kind)


def test_a_task_does_not_retry_a_timeout(prefect_api: str) -> None:
    # the adapter already spent its bounded attempts waiting: a task retry would multiply it
    with pytest.raises(ServiceTimeout):
        _read("silent")
    assert _CALLS == ["silent"]
    # a store that refused at once is worth the task's few retries
    _CALLS.clear()
    with pytest.raises(StorageUnavailable):
        _read("refused")
    assert len(_CALLS) == 1 + IO["retries"] and set(_CALLS) == {"refused"}
