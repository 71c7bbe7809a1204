"""Inventory steps: reading entries and deltas, recording entries, promoting, moving labels."""

from __future__ import annotations

from prefect import task

from blocks.inventory import GitInventory
from changeflow.delta import Delta
from changeflow.models import InventoryEntry, Promotion
from tasks.io import IO

__all__ = ["add_entries", "move_labels", "promote_entries", "read_delta", "read_entries"]


@task(name="read-entries", **IO)
def read_entries(inventory: GitInventory, ref: str) -> dict[str, InventoryEntry]:
    """Every entry at a branch, tag or commit (none when it does not exist yet)."""
    return inventory.entries(ref) if inventory.resolve(ref) else {}


@task(name="add-entries", **IO)
def add_entries(
    inventory: GitInventory, entries: list[InventoryEntry], branch: str, message: str
) -> str | None:
    """Record entries on a branch in one commit; nothing to record writes nothing."""
    if not entries:
        return inventory.resolve(branch)
    return inventory.add_entries(entries, branch=branch, message=message)


@task(name="read-delta", **IO)
def read_delta(inventory: GitInventory, from_ref: str | None, to_ref: str) -> Delta:
    """What changed between two refs, from a tree diff."""
    return inventory.delta(from_ref, to_ref)


@task(name="promote", **IO)
def promote_entries(inventory: GitInventory, promotion: Promotion, merge: bool) -> Promotion:
    """Open a promotion branch and, unless a review is asked for, merge it."""
    return inventory.promote(promotion, merge=merge)


@task(name="move-labels", **IO)
def move_labels(inventory: GitInventory, labels: list[str], commit: str) -> None:
    """Point each label (tag) at the deployed commit."""
    for label in labels:
        inventory.move_tag(label, commit)
