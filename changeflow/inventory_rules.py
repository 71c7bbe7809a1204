"""What counts as an inventory entry, and what is wrong with a file that should be one."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

from pydantic import BaseModel, ValidationError

from changeflow.models import InventoryEntry, validate_entry_name

__all__ = [
    "IGNORE_FILE",
    "MASTER",
    "PROMOTION_FILE",
    "BadEntry",
    "InventoryCheck",
    "entry_problem",
    "is_entry_path",
    "parse_ignore",
]

MASTER = "master"
PROMOTION_FILE = ".promotion.json"
IGNORE_FILE = ".inventoryignore"


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
