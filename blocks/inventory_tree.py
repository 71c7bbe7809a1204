"""Reading the inventory at one commit of its git remote: which files are entries, and them.

Shared by the inventory block and its promotion branches. Refs named by people are checked
here too, so a bad or unknown one is a `BadInput` with one clear line.
"""

from __future__ import annotations

from blocks.gitrepo import GitRemote, check_ref_name
from changeflow.errors import BadInput
from changeflow.inventory_rules import IGNORE_FILE, is_entry_path, parse_entry, parse_ignore
from changeflow.models import InventoryEntry

__all__ = ["commit_of", "entry_names", "ignore_globs", "read_entries", "ref_name"]


def ref_name(name: str, what: str) -> str:
    """Check a branch or label name given by a person.

    Raises:
        BadInput: saying what the name was for and what is wrong with it.
    """
    try:
        return check_ref_name(name)
    except ValueError as exc:
        raise BadInput(f"{what}: {exc}") from None


def commit_of(git: GitRemote, ref: str) -> str:
    """The commit a branch, label or commit names in the mirror.

    Raises:
        BadInput: when it names none.
    """
    sha = git.resolve(ref)
    if sha is None:
        raise BadInput(f"unknown inventory branch, tag or commit: {ref}")
    return sha


def ignore_globs(git: GitRemote, commit: str | None) -> list[str]:
    """The `.inventoryignore` globs at `commit` (none for no commit)."""
    if commit is None:
        return []
    return parse_ignore(git.read_files(commit, [IGNORE_FILE]).get(IGNORE_FILE))


def entry_names(git: GitRemote, commit: str) -> list[str]:
    """The paths at `commit` that are entries, sorted."""
    ignore = ignore_globs(git, commit)
    return sorted(path for path in git.list_files(commit) if is_entry_path(path, ignore))


def read_entries(git: GitRemote, commit: str, names: list[str]) -> dict[str, InventoryEntry]:
    """The entries `names` at `commit` (those present), parsed.

    Raises:
        IntegrityError: when one does not parse as the entry its path names.
    """
    blobs = git.read_files(commit, names)
    return {name: parse_entry(name, blobs[name], commit) for name in names if name in blobs}
