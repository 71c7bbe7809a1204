"""Inventory steps: reading entries and deltas, recording entries, promoting, moving labels."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from blocks.authorship import commit_author
from changeflow.authors import CommitAuthor
from changeflow.delta import Delta
from changeflow.delta_origins import Origins
from changeflow.models import InventoryEntry, Promotion
from changeflow.ports import Inventory
from tasks.io import IO

__all__ = [
    "add_entries",
    "move_labels",
    "promote_entries",
    "read_commit_author",
    "read_delta",
    "read_entries",
    "read_labels",
    "read_origins",
    "read_promotable",
    "resolve_refs",
]


@task(name="read-entries", **IO)
def read_entries(inventory: Inventory, ref: str) -> dict[str, InventoryEntry]:
    """Every entry at a branch, tag or commit (none when it does not exist yet)."""
    return inventory.entries(ref) if inventory.resolve(ref) else {}


@task(name="read-commit-author", **IO)
def read_commit_author(workdir: Path, commit_sha: str) -> CommitAuthor | None:
    """The author (and SSH signing key) of the commit CI checked out, for its entries."""
    return commit_author(workdir, commit_sha)


@task(name="add-entries", **IO)
def add_entries(
    inventory: Inventory, entries: list[InventoryEntry], branch: str, message: str
) -> str | None:
    """Record entries on a branch in one commit; nothing to record writes nothing."""
    if not entries:
        return inventory.resolve(branch)
    return inventory.add_entries(entries, branch=branch, message=message)


@task(name="read-delta", **IO)
def read_delta(inventory: Inventory, from_ref: str | None, to_ref: str) -> Delta:
    """What changed between two refs, from a tree diff."""
    return inventory.delta(from_ref, to_ref)


@task(name="promote", **IO)
def promote_entries(inventory: Inventory, promotion: Promotion, merge: bool) -> Promotion:
    """Open a promotion branch and, unless a review is asked for, merge it."""
    return inventory.promote(promotion, merge=merge)


@task(name="move-labels", **IO)
def move_labels(inventory: Inventory, labels: list[str], commit: str) -> None:
    """Point the labels at the deployed commit, all of them or none (a first deployment
    creates them)."""
    inventory.move_labels(labels, commit)


@task(name="resolve-refs", **IO)
def resolve_refs(inventory: Inventory, refs: list[str]) -> list[str | None]:
    """The commit each branch or label points at (None where it does not exist)."""
    return [inventory.resolve(ref) for ref in refs]


@task(name="read-origins", **IO)
def read_origins(inventory: Inventory, previous: str | None, head: str, delta: Delta) -> Origins:
    """The promotions (and direct writes) that brought a delta, whose fields the CR takes."""
    return inventory.origins(previous, head, [*delta.updated, *delta.deleted])


@task(name="read-labels", **IO)
def read_labels(inventory: Inventory) -> dict[str, str]:
    """Every label of the inventory and the commit it points at."""
    return inventory.labels()


@task(name="read-promotable", **IO)
def read_promotable(
    inventory: Inventory,
    source: str,
    target: str,
    include: list[str] | None,
    exclude: list[str] | None,
) -> list[str]:
    """The names of the entries a promotion from `source` to `target` would move."""
    return inventory.promotable(source, target, include, exclude)
