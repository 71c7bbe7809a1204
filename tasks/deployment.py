"""Deployment steps: staging the delta's artifacts and running the deploy and backout commands."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.commands import CommandResult, run_command
from blocks.secrets import load_secrets
from changeflow.delta import Delta
from changeflow.errors import IntegrityError
from changeflow.models import InventoryEntry, validate_entry_name
from changeflow.names import validate_file_name
from changeflow.ports import EvidenceStore
from changeflow.redaction import hide
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

    Raises:
        IntegrityError: when an artifact's path would leave the artifacts folder.
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
            filename = str(entry.app_artifacts.get("filename", "artifact"))
            locker.download_attachment(entry.sha256, _staging_path(artifacts, name, filename))
    env["CHANGEFLOW_ARTIFACTS_DIR"] = str(artifacts)
    return env


def _staging_path(artifacts: Path, name: str, filename: str) -> Path:
    """Where an entry's artifact is staged: `artifacts/<name>/<filename>`, made safe to write.

    The entry's name and file name were checked when the entry was read; they are checked again
    here, where they become a path, and no part of the path may be a symlink (a write through
    one lands wherever it points) or resolve outside `artifacts`.

    Raises:
        IntegrityError: naming the entry and what is wrong.
    """
    try:
        validate_entry_name(name)
        validate_file_name(filename)
    except ValueError as exc:
        raise IntegrityError(f"entry {name!r} cannot be staged: {exc}") from None
    artifacts.mkdir(parents=True, exist_ok=True)
    target, current = artifacts / name / filename, artifacts
    for part in (*Path(name).parts, filename):
        if current.is_symlink():
            raise IntegrityError(f"entry {name!r} cannot be staged: {current} is a symlink")
        current = current / part
    if current.is_symlink() or not target.resolve().is_relative_to(artifacts.resolve()):
        raise IntegrityError(f"entry {name!r} cannot be staged: {target} leads outside")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


@task(name="run-command", task_run_name="{what}", cache_policy=NO_CACHE)
def run_deployment_command(
    what: str,
    argv: list[str],
    workdir: Path,
    env: dict[str, str],
    pass_env: list[str] | None = None,
    secrets: dict[str, str] | None = None,
) -> CommandResult:
    """Run a deploy, acceptance or backout command; exit 0 means it worked.

    The command gets the allow-listed environment, `env` (the step's documented inputs), the
    worker variables `pass_env` names and each of `secrets` (variable -> Secret block name)
    with its block's value, loaded here so no value is a task's parameter or result.
    """
    values = load_secrets(secrets or {})
    result = run_command(argv, workdir, env={**env, **values}, pass_env=pass_env or ())
    logger = get_run_logger()
    if result.ok:
        logger.info("%s succeeded", what)
    else:
        # what it printed may echo a secret it was given
        tail = hide(result.tail(500), values.values())
        logger.warning("%s exited %s: %s", what, result.returncode, tail)
    return result
