"""`changeflow inventory`: entries, labels and deltas."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from changeflow.cli._app import (
    JsonOpt,
    emit,
    inventory_app,
)
from changeflow.errors import BadInput
from changeflow.models import (
    InventoryEntry,
)


@inventory_app.command("add")
def inventory_add(
    name: Annotated[str, typer.Option()],
    artifact: Annotated[str, typer.Option()],
    version: Annotated[str, typer.Option()],
    sha256: Annotated[str, typer.Option()],
    type_: Annotated[str, typer.Option("--type")],
    repository_url: Annotated[str, typer.Option()],
    commit_sha: Annotated[str, typer.Option()],
    build_number: Annotated[str, typer.Option()],
    pipeline_run_id: Annotated[str, typer.Option()],
    provenance: Annotated[str, typer.Option()],
    signature: Annotated[str | None, typer.Option()] = None,
    environment: Annotated[str, typer.Option(help="The branch to write.")] = "master",
    as_json: JsonOpt = False,
) -> None:
    """Record one artifact as an inventory entry."""
    entry = InventoryEntry(
        name=name, artifact=artifact, version=version, sha256=sha256, type=type_,
        repository_url=repository_url, commit_sha=commit_sha, build_number=build_number,
        pipeline_run_id=pipeline_run_id, provenance=provenance, signature=signature,
    )  # fmt: skip
    from blocks import config

    commit = config.inventory(None).add_entries([entry], branch=environment)
    emit({"entry": entry.model_dump(mode="json", exclude_none=True), "commit": commit}, as_json,
          f"{entry.name} recorded on {environment} at {commit}")  # fmt: skip


def _ref(inventory: Any, environment: str | None, label: str | None) -> str:
    if bool(environment) == bool(label):
        raise BadInput("give either --environment or --label")
    ref = environment or label
    assert ref is not None
    if inventory.resolve(ref) is None:
        kind = "environment" if environment else "label"
        raise BadInput(f"unknown {kind} {ref!r}: the inventory has no such branch or tag")
    return ref


@inventory_app.command("get")
def inventory_get(
    name: str,
    environment: Annotated[str | None, typer.Option()] = None,
    label: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read one entry at an environment or a label."""
    from blocks import config

    inventory = config.inventory(None)
    ref = _ref(inventory, environment, label)
    entry = inventory.get(name, ref)
    if entry is None:
        raise BadInput(f"no entry {name!r} at {ref}")
    human = "\n".join(
        f"{k}: {v}" for k, v in entry.model_dump(mode="json", exclude_none=True).items()
    )
    emit(entry, as_json, human)


@inventory_app.command("delta")
def inventory_delta(
    from_label: Annotated[str, typer.Option()],
    to_environment: Annotated[str, typer.Option()],
    as_json: JsonOpt = False,
) -> None:
    """What changed between a label (e.g. us-south_prod_latest) and an environment."""
    from blocks import config

    inventory = config.inventory(None)
    _ref(inventory, to_environment, None)
    start = inventory.resolve(from_label)
    if start is None:
        raise BadInput(f"unknown label {from_label!r}: the inventory has no such tag")
    delta = inventory.delta(start, to_environment)
    lines = [f"changed {n}" for n in delta.changed] + [f"added {n}" for n in delta.added]
    lines += [f"deleted {n}" for n in delta.deleted]
    data = {"changed": delta.changed, "added": delta.added, "deleted": delta.deleted}
    emit(data, as_json, "\n".join(lines) or "no changes")
