"""Reading the inventory at one commit of its git remote: which files are entries, and them.

Shared by the inventory block and its promotion branches. Refs named by people are checked
here too, so a bad or unknown one is a `BadInput` with one clear line.
"""

from __future__ import annotations

from blocks.gitrepo import GitRemote, check_ref_name
from changeflow.errors import BadInput
from changeflow.inventory_rules import IGNORE_FILE, is_entry_path, parse_entry, parse_ignore
from changeflow.models import InventoryEntry
from changeflow.names import validate_entry_name

__all__ = [
    "checked_entry_names",
    "commit_of",
    "entry_names",
    "ignore_globs",
    "read_entries",
    "ref_name",
    "remove_entry_files",
]


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


def checked_entry_names(names: list[str]) -> list[str]:
    """`names` checked as entry names, sorted, each once.

    Raises:
        BadInput: for the first name that is not an entry name.
    """
    try:
        return sorted({validate_entry_name(name) for name in names})
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def remove_entry_files(
    git: GitRemote, branch: str, names: list[str], message: str | None = None
) -> str:
    """Delete the entries `names` from `branch` in one commit; its head after.

    Names that are not entries there are left alone (a second removal changes nothing).

    Raises:
        BadInput: for a bad branch or entry name, or a branch that does not exist.
    """
    ref_name(branch, "inventory branch")
    gone = checked_entry_names(names)
    git.fetch()
    head = commit_of(git, f"refs/heads/{branch}")

    def change(parent: str | None) -> dict[str, bytes | None]:
        present = set(entry_names(git, parent)) if parent else set()
        return dict.fromkeys(n for n in gone if n in present)

    text = message or f"inventory: remove {', '.join(gone)}"
    return git.commit(branch, change, text) or head
