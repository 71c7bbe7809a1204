"""Where the git change-management repo keeps each thing (`blocks.change_management` uses it).

- `refs/changeflow/last-change-id`: the last id handed out, a blob advanced with a
  compare-and-swap (`GitRemote.allocate`: CRs filed at once are numbered together, each through
  a ticket `refs/changeflow/last-change-id.tickets/<time>-<uuid>` that lives while its filing
  is in flight); `refs/changeflow/publishing`: the baton of whoever publishes main after a
  burst (`blocks.change_publish`).
- `changes/NN` (NN = the id's number mod 64): the CRs themselves, one commit per state change,
  so `git log changes/NN -- changes/<id>.json` is a CR's audit trail. Consecutive ids land on
  different branches: CRs filed at once never race for their content. Besides
  `changes/<id>.json` (the record, canonical JSON) and `changes/<id>.md` (rendered for people),
  a branch holds the same record under `environments/<env>/<id>.json`, and under
  `open/<env>/<id>.json` while it is open: a listing reads one folder of each branch. Filing
  also writes the index by artifact digest there, `artifacts/<hex[:2]>/<hex>/<id>`
  (`blocks.change_index`).
- `main`: what people browse and clone: every CR's `changes/<id>.json` and `.md`, and
  `.changeflow/published`, the shard heads it shows. The incidents live there too.
  `.changeflow/before-shards` names the main commit up to which CRs were filed on main only
  (a repo written before shards; empty for one that never was): their history before that is
  main's log, and their copies on the shards were made by one "index" commit
  (`blocks.change_migration`).
"""

from __future__ import annotations

import builtins

from blocks.gitrepo import DEFAULT_AUTHOR
from blocks.gitrepo.objects import Blob, TreeEntry
from changeflow.change_ids import change_number, is_open
from changeflow.errors import BadInput
from changeflow.models import ChangeRequest
from changeflow.names import validate_environment
from changeflow.ports import Commit
from changeflow.render import render_change_request

__all__ = [
    "BEFORE_SHARDS",
    "BRANCH",
    "CHANGES_DIR",
    "COUNTER",
    "ENVIRONMENTS_DIR",
    "OPEN_DIR",
    "PUBLISHED",
    "SHARDS",
    "SHARD_REFS",
    "change_paths",
    "changed_entries",
    "files_of",
    "index_entries",
    "published_note",
    "shard_branch",
]

BRANCH = "main"
CHANGES_DIR = "changes"
ENVIRONMENTS_DIR = "environments"
OPEN_DIR = "open"
PUBLISHED = ".changeflow/published"
BEFORE_SHARDS = ".changeflow/before-shards"
COUNTER = "refs/changeflow/last-change-id"
SHARDS = 64
SHARD_REFS = "refs/heads/changes/"


def change_paths(change_id: str) -> tuple[str, str]:
    """Return the paths of a change request's record and its Markdown."""
    return f"{CHANGES_DIR}/{change_id}.json", f"{CHANGES_DIR}/{change_id}.md"


def shard_branch(change_id: str) -> str:
    """Return the branch that holds a change request: `changes/<number mod 64>`."""
    return f"changes/{(change_number(change_id) or 0) % SHARDS:02d}"


def files_of(cr: ChangeRequest) -> dict[str, bytes | Blob | None]:
    """A CR version's files on its shard: record, Markdown and the two index entries.

    Raises:
        BadInput: when its environment cannot be a folder name.
    """
    record, markdown = change_paths(cr.id)
    data = cr.to_json() + b"\n"
    entries = index_entries(cr, data)
    return {record: data, markdown: render_change_request(cr).encode("utf-8"), **entries}


def index_entries(cr: ChangeRequest, record: bytes | Blob) -> dict[str, bytes | Blob | None]:
    """The copies of a CR's record (`record`) in the indexes of its shard: by environment, and
    of open CRs while it is open (None: no longer there).

    Raises:
        BadInput: when its environment cannot be a folder name.
    """
    try:
        validate_environment(cr.environment)
    except ValueError as exc:
        raise BadInput(f"{cr.id}: {exc}") from None
    return {
        f"{ENVIRONMENTS_DIR}/{cr.environment}/{cr.id}.json": record,
        f"{OPEN_DIR}/{cr.environment}/{cr.id}.json": record if is_open(cr) else None,
    }


def published_note(commits: builtins.list[Commit]) -> tuple[str, str]:
    """The message and author of the commit that shows `commits` on main: one change's own."""
    if len(commits) == 1:
        return commits[0].message, commits[0].author
    subjects = "".join(f"- {c.message.splitlines()[0]}\n" for c in reversed(commits))
    return f"published {len(commits)} changes\n\n{subjects}", DEFAULT_AUTHOR


def changed_entries(
    now: dict[str, TreeEntry], before: dict[str, TreeEntry]
) -> dict[str, bytes | Blob | None]:
    """main's writes for one shard's `changes` folder moving from `before` to `now`."""
    files: dict[str, bytes | Blob | None] = {
        f"{CHANGES_DIR}/{name}": Blob(entry[2])
        for name, entry in now.items()
        if entry[1] == "blob" and before.get(name) != entry
    }
    files.update({f"{CHANGES_DIR}/{name}": None for name in before if name not in now})
    return files
