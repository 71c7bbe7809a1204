"""Deployment steps: staging the delta's artifacts and running the deploy and backout commands."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.commands import CommandResult, run_command
from changeflow.delta import Delta
from changeflow.models import InventoryEntry
from changeflow.ports import EvidenceStore
from tasks.io import IO

__all__ = ["prepare_deployment", "run_deployment_command"]


@task(name="prepare-deployment", **IO)
def prepare_deployment(
    locker: EvidenceStore,
    workdir: Path,
    delta: Delta,
    entries: dict[str, InventoryEntry],
    context: dict[str, str],
) -> dict[str, str]:
    """Write the delta, deletions and entries as JSON and fetch the delta's artifacts.

    Artifacts stored in the locker are fetched and re-hashed against their entry, so a deploy
    command installs exactly what the evidence is about.

    Returns:
        The environment the deploy and acceptance commands run with.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    files = {
        "CHANGEFLOW_DELTA_PATH": [delta.entries[n].model_dump(mode="json") for n in delta.updated],
        "CHANGEFLOW_DELETIONS_PATH": delta.deleted,
        "CHANGEFLOW_ENTRIES_PATH": [e.model_dump(mode="json") for e in entries.values()],
    }
    env = dict(context)
    for variable, content in files.items():
        path = (
            workdir / f"{variable.removeprefix('CHANGEFLOW_').removesuffix('_PATH').lower()}.json"
        )
        path.write_text(json.dumps(content, indent=2, sort_keys=True))
        env[variable] = str(path)
    artifacts = workdir / "artifacts"
    for name in delta.updated:
        entry = delta.entries[name]
        if locker.holds_artifact(entry.artifact):
            target = artifacts / name / str(entry.app_artifacts.get("filename", "artifact"))
            target.parent.mkdir(parents=True, exist_ok=True)
            locker.download_attachment(entry.sha256, target)
    env["CHANGEFLOW_ARTIFACTS_DIR"] = str(artifacts)
    return env


@task(name="run-command", task_run_name="{what}", cache_policy=NO_CACHE)
def run_deployment_command(
    what: str, argv: list[str], workdir: Path, env: dict[str, str]
) -> CommandResult:
    """Run a deploy, acceptance or backout command; exit 0 means it worked."""
    result = run_command(argv, workdir, env=env)
    logger = get_run_logger()
    if result.ok:
        logger.info("%s succeeded", what)
    else:
        logger.warning("%s exited %s: %s", what, result.returncode, result.tail(500))
    return result
