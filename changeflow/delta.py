"""What changed between two states of an environment's inventory, and what a promotion carries."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import BaseModel, Field

from changeflow.errors import NotReady
from changeflow.models import InventoryEntry

__all__ = [
    "Delta",
    "compute_delta",
    "select_entries",
    "select_promotion",
    "select_promotion_changes",
]


class Delta(BaseModel):
    """Entries changed, added and deleted between two inventory states.

    `entries` holds the new state of every changed or added entry; deleted ones are named only.
    """

    changed: list[str] = Field(default_factory=list)
    added: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    entries: dict[str, InventoryEntry] = Field(default_factory=dict)

    @property
    def updated(self) -> list[str]:
        """Names of every entry to deploy: changed and added."""
        return sorted([*self.changed, *self.added])

    @property
    def is_empty(self) -> bool:
        return not (self.changed or self.added or self.deleted)


def compute_delta(before: dict[str, InventoryEntry], after: dict[str, InventoryEntry]) -> Delta:
    """Compare two full inventory states (use a tree diff instead where one is available).

    The in-memory inventory answers `delta` with it; the git inventory diffs trees instead.
    """
    added = sorted(set(after) - set(before))
    deleted = sorted(set(before) - set(after))
    changed = sorted(name for name in set(after) & set(before) if after[name] != before[name])
    return Delta(
        changed=changed,
        added=added,
        deleted=deleted,
        entries={name: after[name] for name in [*changed, *added]},
    )


def select_entries(names: list[str], include: list[str], exclude: list[str]) -> list[str]:
    """Keep the names matching any `include` glob (all when none) and no `exclude` glob."""
    kept = [n for n in names if not include or any(fnmatchcase(n, g) for g in include)]
    return sorted(n for n in kept if not any(fnmatchcase(n, g) for g in exclude))


def select_promotion(
    differing: list[str], include: list[str], exclude: list[str], *, source: str, target: str
) -> list[str]:
    """The entries a promotion from `source` to `target` carries, sorted.

    Args:
        differing: the entries of `source` that the target lacks or holds otherwise (a
            deletion is never promoted, so entries only the target has are not among them).
        include: globs; when any is given, only names matching one are kept.
        exclude: globs; names matching one are dropped.

    Raises:
        NotReady: when nothing is left to promote.
    """
    names = select_entries(differing, include, exclude)
    if not names:
        raise NotReady(f"nothing to promote from {source} to {target}")
    return names


def select_promotion_changes(
    differing: list[str],
    gone: list[str],
    include: list[str],
    exclude: list[str],
    *,
    source: str,
    target: str,
) -> tuple[list[str], list[str]]:
    """(entries to copy, entries to delete) of a promotion from `source` to `target`, sorted.

    A deletion is promoted like any change: an entry the target holds and the source no longer
    does is removed from the target, filtered by the same globs.

    Args:
        differing: the entries of `source` that the target lacks or holds otherwise.
        gone: the entries the target holds and `source` does not.
        include: globs; when any is given, only names matching one are kept.
        exclude: globs; names matching one are dropped.

    Raises:
        NotReady: when nothing is left to copy or delete.
    """
    names = select_entries(differing, include, exclude)
    deleted = select_entries(gone, include, exclude)
    if not names and not deleted:
        raise NotReady(f"nothing to promote from {source} to {target}")
    return names, deleted
