"""What tests share besides fixtures: the S3 server's handle, fresh stacks, the CLI in-process.

A module of its own (not conftest.py): several conftest modules exist, and only a uniquely named
module imports the same way from every test folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import TypeVar

import pytest
from prefect_aws import AwsCredentials
from prefect_aws.client_parameters import AwsClientParameters

from blocks.evidence_locker import EvidenceLocker
from cli.local_stack import init_bare_repo

__all__ = [
    "S3Server",
    "fresh_stack",
    "git_in",
    "new_bucket",
    "race",
    "register_deployment",
    "run_changeflow",
    "ship_to_prod",
]


Writer = TypeVar("Writer")
Result = TypeVar("Result")


def race(
    count: int, prepare: Callable[[int], Writer], act: Callable[[int, Writer], Result]
) -> tuple[list[Result], list[BaseException]]:
    """Run `count` writers in threads, released together; what they returned and what they raised.

    Each thread runs `prepare` (opening its mirror, say) before the release, so only `act` races.
    """
    start = threading.Barrier(count)
    results: list[Result] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            writer = prepare(i)
            start.wait()
            results.append(act(i, writer))
        except BaseException as exc:
            errors.append(exc)
            start.abort()  # the others must not wait for a writer that will never come

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    # credentials that may read and list but not write
    reader_key: str = ""
    reader_secret: str = ""

    def credentials(self, secret_key: str | None = None, reader: bool = False) -> AwsCredentials:
        return AwsCredentials(
            aws_access_key_id=self.reader_key if reader else self.access_key,
            aws_secret_access_key=secret_key or (self.reader_secret if reader else self.secret_key),
            region_name="us-east-1",
            aws_client_parameters=AwsClientParameters(endpoint_url=self.endpoint),
        )

    def locker(self, bucket: str, **kwargs: object) -> EvidenceLocker:
        return EvidenceLocker(bucket=bucket, credentials=self.credentials(), **kwargs)


def new_bucket() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


def fresh_stack(s3_server: S3Server, root: Path) -> dict[str, str]:
    """A new locked bucket and new bare remotes under `root`, as `CHANGEFLOW_*` variables."""
    bucket = new_bucket()
    s3_server.locker(bucket).create_bucket()
    return {
        "CHANGEFLOW_S3_ENDPOINT": s3_server.endpoint,
        "CHANGEFLOW_S3_BUCKET": bucket,
        "CHANGEFLOW_S3_ACCESS_KEY": s3_server.access_key,
        "CHANGEFLOW_S3_SECRET_KEY": s3_server.secret_key,
        "CHANGEFLOW_INVENTORY_URL": init_bare_repo(root / "remotes" / "inventory.git"),
        "CHANGEFLOW_CHANGE_REPO_URL": init_bare_repo(root / "remotes" / "changes.git", "main"),
        "CHANGEFLOW_ENVIRONMENTS": "",
    }


def run_changeflow(*args: str, env: dict[str, str] | None = None) -> CompletedProcess[str]:
    """Run `changeflow ARGS` in this process (through `main()`, exit codes and all) and capture
    what it prints: the same contract as a subprocess, without paying Prefect's import each time.
    `tests/cli/test_bad_input.py` also runs the real executable."""
    from cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_argv = os.environ.copy(), sys.argv
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    sys.argv = ["changeflow", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
    return CompletedProcess(["changeflow", *args], code, out.getvalue(), err.getvalue())


def git_in(remote: Path, *args: str) -> str:
    """Run a git command against a bare repository and return what it prints."""
    import subprocess

    return subprocess.run(
        ["git", "--git-dir", str(remote), *args], check=True, capture_output=True, text=True
    ).stdout


def push_ticket(bare: Path, age_s: float, value: str = "pending", name: str = "x") -> str:
    """Push a CR id ticket by hand, as a writer that took it `age_s` seconds ago would have:
    pending, or holding a number (`value`); return its ref."""
    import subprocess
    import time

    blob = subprocess.run(
        ["git", "--git-dir", str(bare), "hash-object", "-w", "--stdin"],
        input=f"{value}\n".encode(), capture_output=True, check=True,
    ).stdout.decode().strip()  # fmt: skip
    ref = f"refs/changeflow/last-change-id.tickets/{time.time_ns() - int(age_s * 1e9):020d}-{name}"
    git_in(bare, "update-ref", ref, blob)
    return ref


def ship_to_prod(
    names: list[str], promotion_id: str, passing: bool = True, *, emergency: bool = False
) -> None:
    """Store an artifact per name with the default required evidence, record the entries on
    master and promote them to prod, through the `CHANGEFLOW_*` stores (as CI and promote do).

    With `passing` false, each artifact's first required evidence fails; `emergency` makes the
    promotion an emergency one (`promote --emergency`)."""
    from blocks import stores as config
    from changeflow.evidence import make_evidence
    from changeflow.models import Asset, InventoryEntry, Promotion
    from changeflow.readiness import DEFAULT_REQUIRED_TYPES

    locker, inventory = config.evidence_locker(None), config.inventory(None)
    entries = []
    for name in names:
        stored = locker.store_attachment_bytes(f"artifact bytes of {name}".encode(), "app.bin")
        artifact = Asset.for_uri(f"artifact://{name}@{stored.hash}")
        for kind in DEFAULT_REQUIRED_TYPES:
            result = "success" if passing or kind != DEFAULT_REQUIRED_TYPES[0] else "failure"
            evidence = make_evidence(
                evidence_type_id=kind, result=result, tool="t", scope="ci-1", assets=[artifact]
            )
            locker.put_evidence(evidence, [artifact])
        entries.append(
            InventoryEntry(
                name=name,
                artifact=stored.url,
                version="1",
                type="file",
                sha256=stored.hash,
                repository_url="https://example.com/app",
                commit_sha="c" * 40,
                build_number="1",
                pipeline_run_id="ci-1",
                provenance=artifact.uri,
                app_artifacts={"filename": "app.bin"},
            )
        )
    inventory.add_entries(entries)
    inventory.promote(
        Promotion(
            id=promotion_id,
            source="master",
            target="prod",
            assigned_to="rm",
            description="d",
            backout_plan="b",
            emergency=emergency,
        )
    )


def register_deployment(
    name: str, workspace: Path, monkeypatch: pytest.MonkeyPatch, as_name: str | None = None
) -> uuid.UUID:
    """Register one deployment of the checkout's prefect.yaml (schedules paused) as `changeflow
    serve` would, with the demo's environments (staging: us-south; prod: us-south, eu-de) as
    CHANGEFLOW_ENVIRONMENTS, and return its id."""
    from cli.demo import environments_toml
    from cli.serve import runner_deployments

    environments = workspace / "environments.toml"
    environments.write_text(environments_toml(workspace / "app", workspace / "deployed"))
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
    prefect_yaml = Path(__file__).resolve().parents[1] / "prefect.yaml"
    [deployment] = runner_deployments(prefect_yaml, [name], pause_schedules=True)
    deployment.name = as_name or name
    deployment_id = deployment.apply()
    assert isinstance(deployment_id, uuid.UUID)
    return deployment_id


POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def postgres_admin(sql: str, database: str = "test") -> None:
    """Run one statement on the machine's PostgreSQL (trust auth), as its administrator."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(database=database, **POSTGRES)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database, dropped afterwards: (its name, Prefect's URL for it)."""
    database = f"changeflow_{uuid.uuid4().hex[:12]}"
    postgres_admin(f'CREATE DATABASE "{database}"')
    try:
        host, port, user = POSTGRES["host"], POSTGRES["port"], POSTGRES["user"]
        yield database, f"postgresql+asyncpg://{user}@{host}:{port}/{database}"
    finally:
        postgres_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
