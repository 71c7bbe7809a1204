"""Scale-out: a Prefect server on PostgreSQL and four regions deploying at the same moment.

Every process races for the next change request id in the change-management repo and for the
environment's `_latest` tag in the inventory; each region must still get its own CR, closed
successful, and its own `<region>_<env>_latest` tag.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from stack_support import POSTGRES

from blocks.change_management import GitChangeManagement
from blocks.inventory import GitInventory
from blocks.source import commit_all
from changeflow.models import ChangeState, CloseCategory
from cli.demo import sample_app_dir
from cli.local_stack import init_bare_repo

pytestmark = pytest.mark.timeout(900)

ENV = "prod"
REGIONS = ["us-south", "us-east", "eu-de", "jp-tok"]
CLI = [sys.executable, "-m", "cli"]


async def _fetch(database: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database=database, **POSTGRES)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _run(args: list[str], env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[3:]}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


def test_four_regions_deploy_at_once_on_a_postgres_backed_server(
    s3_server, prefect_database: tuple[str, str], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # the session's server runs on PostgreSQL (tests/conftest.py); this test's runs are the
    # ones created from now on
    api, database = prefect_database
    started = datetime.now(UTC)
    bucket = f"scale-{uuid.uuid4().hex[:12]}"
    s3_server.locker(bucket).create_bucket()
    remotes = tmp_path / "remotes"
    env_file = tmp_path / "environments.toml"
    env_file.write_text(
        f"[environments.{ENV}]\n"
        f"regions = {json.dumps(REGIONS)}\n"
        f"deploy = {json.dumps([sys.executable, '-c', 'pass'])}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHANGEFLOW_", "PREFECT_API"))}
    env |= {
        "PREFECT_API_URL": api,
        "CHANGEFLOW_S3_ENDPOINT": s3_server.endpoint,
        "CHANGEFLOW_S3_BUCKET": bucket,
        "CHANGEFLOW_S3_ACCESS_KEY": s3_server.access_key,
        "CHANGEFLOW_S3_SECRET_KEY": s3_server.secret_key,
        "CHANGEFLOW_INVENTORY_URL": init_bare_repo(remotes / "inventory.git"),
        "CHANGEFLOW_CHANGE_REPO_URL": init_bare_repo(remotes / "changes.git"),
        "CHANGEFLOW_ENVIRONMENTS": str(env_file),
        "CHANGEFLOW_HOME": str(tmp_path / "home"),
    }

    app = tmp_path / "sample-app"
    shutil.copytree(
        sample_app_dir(), app, ignore=shutil.ignore_patterns("dist", "reports", "__pycache__")
    )
    repo_url = init_bare_repo(remotes / "sample-app.git")
    sha = commit_all(app, "sample-app: release for every region", repo_url)
    _run([*CLI, "ci", "--repo", repo_url, "--commit", sha], env)
    _run(
        [*CLI, "promote", "--source", "master", "--target", ENV, "--priority", "moderate",
         "--assigned-to", "release-manager@example.com", "--description", "to every region",
         "--backout-plan", "redeploy the previous inventory commit"],
        env,
    )  # fmt: skip

    # four processes, one per region, all at once, on two "nodes": two processes share each
    # node's CHANGEFLOW_HOME (and its git mirrors), the nodes share nothing but the services
    deploys = {}
    for i, region in enumerate(REGIONS):
        node_env = env | {"CHANGEFLOW_HOME": str(tmp_path / f"node-{i % 2}")}
        deploys[region] = subprocess.Popen(
            [*CLI, "deploy", "--environment", ENV, "--region", region, "--json"],
            env=node_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    outcomes = {}
    try:
        for region, process in deploys.items():
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, f"{region}: {err.decode()[-3000:]}"
            outcomes[region] = json.loads(out)
    finally:
        for process in deploys.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    ids = {outcomes[r]["change_request"] for r in REGIONS}
    assert len(ids) == 4 and None not in ids, outcomes
    for region, outcome in outcomes.items():
        assert outcome["region"] == region
        assert (outcome["state"], outcome["close_category"]) == ("closed", "successful"), outcome

    changes = GitChangeManagement(
        remote_url=env["CHANGEFLOW_CHANGE_REPO_URL"], cache_dir=str(tmp_path / "check")
    )
    crs = [cr for cr in changes.list() if cr.id in ids]
    assert sorted(cr.region for cr in crs) == sorted(REGIONS)
    inventory = GitInventory(
        remote_url=env["CHANGEFLOW_INVENTORY_URL"], cache_dir=str(tmp_path / "check")
    )
    head = inventory.resolve(ENV)
    for cr in crs:
        assert cr.state is ChangeState.closed
        assert cr.close_category is CloseCategory.successful
        assert cr.inventory_commit == head
    tags = inventory.labels()
    assert {f"{r}_{ENV}_latest" for r in REGIONS} <= set(tags)
    assert all(tags[f"{r}_{ENV}_latest"] == head for r in REGIONS)
    assert tags[f"{ENV}_latest"] == head

    # the runs really live in PostgreSQL
    rows = asyncio.run(
        _fetch(
            database,
            "SELECT f.name AS flow, r.name AS run, r.state_type FROM flow_run r "
            "JOIN flow f ON f.id = r.flow_id WHERE r.created >= $1",
            started,
        )
    )
    deploy_runs = {r["run"]: r["state_type"] for r in rows if r["flow"] == "deploy"}
    assert deploy_runs == {f"deploy-{ENV}-{r}": "COMPLETED" for r in REGIONS}
    assert {"ci", "promote"} <= {r["flow"] for r in rows}
