"""CI steps: check out, build, run checks."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.commands import CommandResult, run_command
from blocks.source import checkout
from changeflow.canonical import digest
from changeflow.errors import BadInput
from changeflow.evidence import artifact_uri, inventory_entry
from changeflow.models import Asset, InventoryEntry
from changeflow.ports import EvidenceStore
from changeflow.project import AppConfig, ArtifactSpec, CheckSpec, load_app_config
from tasks.io import IO

__all__ = ["build_artifacts", "checkout_source", "publish_artifacts", "run_check"]


@task(name="checkout", **IO)
def checkout_source(repo_url: str, commit_sha: str) -> tuple[Path, AppConfig]:
    """Check out the commit and load its `changeflow.toml`."""
    workdir = checkout(repo_url, commit_sha)
    return workdir, load_app_config(workdir / "changeflow.toml")


@task(name="build", cache_policy=NO_CACHE)
def build_artifacts(workdir: Path, config: AppConfig) -> list[tuple[ArtifactSpec, Path]]:
    """Run the build command and find each declared artifact.

    Raises:
        RuntimeError: when the build fails or an artifact is missing.
    """
    result = run_command(config.build, workdir)
    if not result.ok:
        raise RuntimeError(f"build failed ({result.returncode}): {result.tail()}")
    found = []
    for spec in config.artifacts:
        matches = sorted(workdir.glob(spec.glob))
        if len(matches) != 1:
            raise BadInput(f"artifact {spec.name}: {spec.glob} matched {len(matches)} files")
        found.append((spec, matches[0]))
    return found


@task(name="run-check", task_run_name="check-{check.name}", cache_policy=NO_CACHE)
def run_check(workdir: Path, check: CheckSpec) -> tuple[CommandResult, bytes | None]:
    """Run one check; its report's bytes, or None when it left no report.

    A failing command is not an error: the report (or its absence) decides the evidence.
    """
    report = workdir / check.report
    report.parent.mkdir(parents=True, exist_ok=True)
    result = run_command(check.command, workdir)
    if check.stdout:
        report.write_bytes(result.stdout)
    get_run_logger().info("check %s exited %s", check.name, result.returncode)
    return result, report.read_bytes() if report.exists() else None


@task(name="publish-artifacts", **IO)
def publish_artifacts(
    locker: EvidenceStore,
    built: list[tuple[ArtifactSpec, Path]],
    *,
    app_name: str,
    commit: Asset,
    build_number: str,
    scope: str,
) -> list[tuple[InventoryEntry, Asset]]:
    """Store each artifact, content-addressed, and describe it as an inventory entry."""
    published = []
    for spec, path in built:
        data = path.read_bytes()
        stored = locker.store_attachment_bytes(data, path.name)
        asset = Asset.for_uri(artifact_uri(path.name, digest(data)), related=[commit.uri])
        entry = inventory_entry(
            name=f"{app_name}/{spec.name}",
            spec_type=spec.type,
            filename=path.name,
            stored=stored,
            commit=commit,
            build_number=build_number,
            scope=scope,
            provenance=asset.uri,
        )
        published.append((entry, asset))
    return published
