"""`changeflow inventory`: entries, labels, deltas and a check of a whole environment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from pydantic import ValidationError

from changeflow.authors import CommitAuthor
from changeflow.errors import BadInput, NotReady
from changeflow.models import InventoryEntry
from changeflow.ports import Inventory
from cli._app import JsonOpt, emit, inventory_app

__all__ = [
    "inventory_add",
    "inventory_delta",
    "inventory_get",
    "inventory_remove",
    "inventory_validate",
    "label_add",
    "label_app",
    "label_delete",
    "label_list",
    "label_move",
]

label_app = typer.Typer(
    help="Labels (git tags) on inventory states: <env>_latest, <region>_<env>_latest, run ids.",
    no_args_is_help=True,
)
inventory_app.add_typer(label_app, name="label")


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
    author: Annotated[
        str | None, typer.Option(help="The commit's author, 'Name <email>' (default: git's).")
    ] = None,
    author_key: Annotated[
        str | None, typer.Option(help="The SSH public key that signed the commit.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record one artifact as an inventory entry, with its commit's author.

    Without `--author`, the author (and signing key) come from the commit in the git checkout
    the command runs in, when it holds `--commit-sha`.
    """
    entry = InventoryEntry(
        name=name, artifact=artifact, version=version, sha256=sha256, type=type_,
        repository_url=repository_url, commit_sha=commit_sha, build_number=build_number,
        pipeline_run_id=pipeline_run_id, provenance=provenance, signature=signature,
    )  # fmt: skip
    entry = entry.model_copy(update={"author": _author(entry.commit_sha, author, author_key)})
    from blocks import stores

    commit = stores.inventory(None).add_entries([entry], branch=environment)
    emit({"entry": entry.model_dump(mode="json", exclude_none=True), "commit": commit}, as_json,
          f"{entry.name} recorded on {environment} at {commit}")  # fmt: skip


def _author(commit_sha: str, identity: str | None, key: str | None) -> CommitAuthor | None:
    """The commit's author as given, else as the git checkout here records it."""
    if identity is None:
        if key is not None:
            raise BadInput("--author-key needs --author")
        from pathlib import Path

        from blocks.authorship import commit_author

        return commit_author(Path.cwd(), commit_sha)
    try:
        return CommitAuthor(identity=identity, key=key)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--author-key" if first["loc"] == ("key",) else "--author"
        raise BadInput(f"{option}: {str(first['msg']).removeprefix('Value error, ')}") from None


@inventory_app.command("remove")
def inventory_remove(
    names: Annotated[list[str], typer.Argument(help="Entry names to delete.")],
    environment: Annotated[str, typer.Option(help="The branch to write.")] = "master",
    as_json: JsonOpt = False,
) -> None:
    """Delete entries in one commit; promoting then removes them from the target too."""
    from blocks import stores

    commit = stores.inventory(None).remove_entries(names, branch=environment)
    emit({"removed": sorted(set(names)), "commit": commit}, as_json,
          f"{', '.join(sorted(set(names)))} removed from {environment} at {commit}")  # fmt: skip


def _ref(inventory: Inventory, environment: str | None, label: str | None) -> str:
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
    from blocks import stores

    inventory = stores.inventory(None)
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
    from blocks import stores

    inventory = stores.inventory(None)
    _ref(inventory, to_environment, None)
    start = inventory.resolve(from_label)
    if start is None:
        raise BadInput(f"unknown label {from_label!r}: the inventory has no such tag")
    delta = inventory.delta(start, to_environment)
    lines = [f"changed {n}" for n in delta.changed] + [f"added {n}" for n in delta.added]
    lines += [f"deleted {n}" for n in delta.deleted]
    data = {"changed": delta.changed, "added": delta.added, "deleted": delta.deleted}
    emit(data, as_json, "\n".join(lines) or "no changes")


@inventory_app.command("validate")
def inventory_validate(
    environment: Annotated[str | None, typer.Option()] = None,
    label: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every entry of an environment (or label) from the raw files; exit 1 if any is bad."""
    from blocks import stores

    inventory = stores.inventory(None)
    ref = _ref(inventory, environment, label)
    check = inventory.validate(ref)
    data = {
        "ref": ref,
        "commit": check.commit,
        "checked": check.checked,
        "ok": not check.bad,
        "bad": [b.model_dump() for b in check.bad],
    }
    lines = [f"bad entry {b.name}: {b.problem}" for b in check.bad]
    lines.append(
        f"{ref} at {check.commit[:12]}: {check.checked} entries checked, "
        + (f"{len(check.bad)} bad" if check.bad else "all valid")
    )
    emit(data, as_json, "\n".join(lines))
    if check.bad:
        raise typer.Exit(1)


def _labels_call(action: Callable[[], str]) -> str:
    """Run a label change; a compare-and-swap lost to another writer is a "no" (exit 1)."""
    from blocks.gitrepo import RefConflict

    try:
        return action()
    except RefConflict as exc:
        raise NotReady(f"the label changed meanwhile, look again and retry: {exc}") from None


def _point_label(name: str, to: str, *, move: bool) -> str:
    """Add or move a label to `to`, after checking `to` (and a label to move) exists."""
    from blocks import stores

    inventory: Inventory = stores.inventory(None)
    if inventory.resolve(to) is None:
        raise BadInput(f"unknown --to {to!r}: the inventory has no such branch, label or commit")
    # The port's move makes a missing label (a first deployment does); by hand, it is a typo.
    if move and name not in inventory.labels():
        raise BadInput(f"unknown label {name}")
    if move:
        return _labels_call(lambda: inventory.move_labels([name], to))
    return _labels_call(lambda: inventory.add_label(name, to))


@label_app.command("list")
def label_list(as_json: JsonOpt = False) -> None:
    """Every label and the commit it points at."""
    from blocks import stores

    labels = stores.inventory(None).labels()
    emit(labels, as_json, "\n".join(f"{k} {v}" for k, v in sorted(labels.items())) or "no labels")


@label_app.command("add")
def label_add(
    name: str,
    to: Annotated[str, typer.Option(help="Environment, label or commit to label.")],
    as_json: JsonOpt = False,
) -> None:
    """Create a label; refused when it exists already (use `label move`)."""
    commit = _point_label(name, to, move=False)
    emit({"label": name, "commit": commit}, as_json, f"label {name} added at {commit}")


@label_app.command("move")
def label_move(
    name: str,
    to: Annotated[str, typer.Option(help="Environment, label or commit to move it to.")],
    as_json: JsonOpt = False,
) -> None:
    """Move an existing label (a compare-and-swap: a concurrent move makes it exit 1)."""
    commit = _point_label(name, to, move=True)
    emit({"label": name, "commit": commit}, as_json, f"label {name} moved to {commit}")


@label_app.command("delete")
def label_delete(name: str, as_json: JsonOpt = False) -> None:
    """Delete a label."""
    from blocks import stores

    commit = _labels_call(lambda: stores.inventory(None).delete_label(name))
    emit({"label": name, "deleted": commit}, as_json, f"label {name} deleted (was at {commit})")
