"""The inventory's rules: what counts as an entry, what is wrong with one, how promotions travel.

The inventory is a tree of files, one JSON entry per built artifact. Hidden files, Markdown and
paths an `.inventoryignore` names are not entries. Branch `master` is written by CI, each other
branch is an environment, and a promotion travels on `promotion/<target>/<id>` carrying its
record in `.promotion.json`. The texts of the commits and pull requests are here too, so every
inventory backend writes the same history.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from fnmatch import fnmatchcase

from pydantic import BaseModel, ValidationError

from changeflow.delta_origins import PROMOTION_FILE
from changeflow.errors import BadInput, IntegrityError
from changeflow.models import InventoryEntry, Promotion, validate_entry_name
from changeflow.render import code_span, escape_block, escape_inline

__all__ = [
    "IGNORE_FILE",
    "MASTER",
    "PROMOTION_FILE",
    "PROMOTION_PREFIX",
    "REAPPLIED",
    "BadEntry",
    "InventoryCheck",
    "check_entries",
    "check_promotion_target",
    "clash_problem",
    "entry_files",
    "entry_folders",
    "entry_problem",
    "find_promotion",
    "is_entry_path",
    "is_environment",
    "parse_entry",
    "parse_ignore",
    "parse_promotion",
    "promotion_branch",
    "promotion_message",
    "pull_request_message",
    "pull_request_text",
    "record_message",
    "refuse_ignored",
    "types_in",
]

MASTER = "master"
IGNORE_FILE = ".inventoryignore"
PROMOTION_PREFIX = "promotion/"
# Added to a promotion's commit message when a merge had to commit it again on a moved target.
REAPPLIED = "\n\n(re-applied on the moved target)"


def parse_ignore(text: bytes | None) -> list[str]:
    """Return the globs of an `.inventoryignore` file (blank lines and `#` comments skipped)."""
    if not text:
        return []
    lines = (line.strip() for line in text.decode("utf-8", "replace").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_entry_path(path: str, ignore: list[str] | None = None) -> bool:
    """Tell whether a file in the inventory is an entry.

    Hidden files (any part starting with "."), Markdown files and paths matching an ignore
    glob are not. A glob matches the path or any of its folders; one without "/" also matches
    a single name at any depth (like `.gitignore`).
    """
    parts = path.split("/")
    if any(part.startswith(".") for part in parts) or path.endswith(".md"):
        return False
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in ignore or []:
        glob = raw.strip("/")
        candidates = prefixes if "/" in raw.rstrip("/") else prefixes + parts
        if glob and any(fnmatchcase(candidate, glob) for candidate in candidates):
            return False
    return True


class BadEntry(BaseModel):
    """A file in the inventory that should be an entry and is not a valid one.

    Attributes:
        name: its path in the inventory.
        problem: what is wrong, on one line.
    """

    name: str
    problem: str


class InventoryCheck(BaseModel):
    """What `inventory validate` found at one commit."""

    commit: str
    checked: int
    bad: list[BadEntry] = []


def entry_problem(path: str, data: bytes) -> str | None:
    """What is wrong with the raw file `path` as an inventory entry, or None."""
    try:
        validate_entry_name(path)
    except ValueError as exc:
        return str(exc)
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(raw, dict):
        return f"not a JSON object but {type(raw).__name__}"
    try:
        entry = InventoryEntry.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ())) or 'record'}: {err['msg']}"
            for err in exc.errors()
        ]
        return "; ".join(problems)
    if entry.name != path:
        return f"names itself {entry.name!r}"
    return None


def check_entries(commit: str, files: Mapping[str, bytes]) -> InventoryCheck:
    """Check the raw files that should be entries at `commit` (path → bytes); name each bad."""
    bad = [
        BadEntry(name=name, problem=problem)
        for name in sorted(files)
        if (problem := entry_problem(name, files[name])) is not None
    ]
    return InventoryCheck(commit=commit, checked=len(files), bad=bad)


def entry_files(entries: list[InventoryEntry]) -> dict[str, bytes]:
    """The file each entry is stored as, by path: its canonical JSON and a newline.

    Raises:
        BadInput: for a name given twice.
    """
    files: dict[str, bytes] = {}
    for entry in entries:
        if entry.name in files:
            raise BadInput(f"inventory entry {entry.name} given twice")
        files[entry.name] = entry.to_json() + b"\n"
    return files


def refuse_ignored(names: list[str], ignore: list[str], branch: str) -> None:
    """Refuse to record entries the branch's `.inventoryignore` would never read back.

    Raises:
        BadInput: naming the first such entry.
    """
    ignored = [n for n in names if not is_entry_path(n, ignore)]
    if ignored:
        raise BadInput(f"inventory entry {ignored[0]} matches {IGNORE_FILE} on {branch}")


def parse_entry(path: str, data: bytes, commit: str) -> InventoryEntry:
    """Read the entry stored at `path` in `commit`.

    Raises:
        IntegrityError: when it is not an entry, or one that names itself otherwise.
    """
    try:
        entry = InventoryEntry.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "record"
        raise IntegrityError(
            f"{path} at {commit[:12]} is not an inventory entry: {where}: {first['msg']}"
        ) from None
    if entry.name != path:
        raise IntegrityError(f"{path} at {commit[:12]} names itself {entry.name!r}")
    return entry


def entry_folders(names: list[str]) -> set[str]:
    """Every folder the entry names lie in (`a/b/c` lies in `a` and `a/b`)."""
    return {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}


def types_in(files: Collection[str], paths: list[str]) -> dict[str, str]:
    """Path → "blob" or "tree" for those of `paths` that a tree of `files` (paths) holds."""
    folders = entry_folders(list(files))
    found = {p: "blob" for p in paths if p in files}
    found.update({p: "tree" for p in paths if p in folders})
    return found


def clash_problem(names: list[str], types: Mapping[str, str]) -> str | None:
    """What stops writing entries `names`, given what their paths and folders are now, or None.

    Writing "a/b" over a file "a" (or "a" over a folder "a/") would silently drop entries.

    Args:
        names: the entries to write.
        types: path → "blob" or "tree", for those of `names` and `entry_folders(names)` that
            exist now.
    """
    folders = entry_folders(names)
    for path, kind in types.items():
        if (path in folders and kind != "tree") or (path in names and kind != "blob"):
            what = "folder" if kind == "tree" else "file"
            return f"inventory path {path} is already a {what}"
    return None


# ----------------------------------------------------------------------------------- branches


def is_environment(branch: str) -> bool:
    """Tell whether a branch is an environment: any branch but `master` and `promotion/*`."""
    return branch != MASTER and not branch.startswith(PROMOTION_PREFIX)


def check_promotion_target(source: str, target: str) -> None:
    """Refuse a target that is not an environment, or is the source itself.

    Raises:
        BadInput: naming the target.
    """
    if target == source or not is_environment(target):
        raise BadInput(f"cannot promote to {target!r}")


def promotion_branch(target: str, promotion_id: str) -> str:
    """The branch a promotion travels on until it is merged: `promotion/<target>/<id>`."""
    return f"{PROMOTION_PREFIX}{target}/{promotion_id}"


def find_promotion(branches: list[str], promotion_id: str) -> tuple[str, str]:
    """Return (branch, target) of the open promotion `promotion_id` among `branches`.

    Raises:
        BadInput: when no branch, or several, carry that promotion.
    """
    suffix = f"/{promotion_id}"
    matches = [
        b
        for b in branches
        if b.startswith(PROMOTION_PREFIX) and b.endswith(suffix) and b.count("/") >= 2
    ]
    if not matches:
        raise BadInput(f"unknown promotion {promotion_id}")
    if len(matches) > 1:
        raise BadInput(f"promotion {promotion_id} is open for several targets: {matches}")
    branch = matches[0]
    return branch, branch[len(PROMOTION_PREFIX) : -len(suffix)]


def parse_promotion(data: bytes, commit: str) -> Promotion:
    """Read the promotion record (`.promotion.json`) stored in `commit`.

    Raises:
        IntegrityError: when it is not a promotion record.
    """
    try:
        return Promotion.model_validate_json(data)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise IntegrityError(
            f"{PROMOTION_FILE} at {commit[:12]} is not a promotion record: {problem}"
        ) from None


# -------------------------------------------------------------------------------------- texts


def _entries(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


def _names_line(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def record_message(names: list[str]) -> str:
    """The commit message of CI recording entries."""
    return f"inventory: record {_entries(len(names))}: {_names_line(names)}"


def promotion_message(record: Promotion) -> str:
    """The commit message of a promotion: what moves where, why, and from which commit."""
    return (
        f"promote {record.id}: {_entries(len(record.entries))} from {record.source} "
        f"to {record.target}\n\n"
        f"{record.description}\n\n"
        f"priority: {record.priority.value}\nassigned to: {record.assigned_to}\n"
        f"source commit: {record.source_commit}\nentries: {', '.join(record.entries)}\n"
        + (f"deletions: {', '.join(record.deletions)}\n" if record.deletions else "")
    )


def pull_request_message(record: Promotion) -> str:
    """The commit message noting, on a promotion's branch, the pull request it was opened as."""
    link = record.pull_request
    where = f" ({link.url})" if link and link.url else ""
    return f"promotion {record.id}: opened as pull request #{link.number if link else '?'}{where}"


def pull_request_text(record: Promotion, target: str) -> tuple[str, str]:
    """The title and body of the pull request a promotion left for review is opened as."""
    moved = f"{_entries(len(record.entries))} from {record.source} to {target}"
    title = f"promote {record.id}: {moved}"
    # the body is Markdown on the forge: what people typed is escaped, so it stays their text
    body = "\n".join(
        [
            escape_block(record.description),
            "",
            f"- priority: {record.priority.value}",
            f"- assigned to: {escape_inline(record.assigned_to)}",
            f"- customer impact: {record.customer_impact.value}",
            f"- backout plan: {escape_inline(record.backout_plan)}",
            f"- source commit: {escape_inline(str(record.source_commit))}",
            "",
            "Entries:",
            *(f"- {code_span(name)}" for name in record.entries),
            *(f"- deleted: {code_span(name)}" for name in record.deletions),
            "",
            f"Approve by merging, or run `changeflow promote --merge {record.id}`.",
        ]
    )
    return title, body
