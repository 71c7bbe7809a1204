"""Change requests filed before shards: indexed on their shards once, on the first write.

A repo written by a version before shards (`blocks.change_layout`) keeps every CR under
`changes/` on main only; one written by the first version with shards has its new CRs on
shards and the old ones still on main only. Either way, main has no `.changeflow/before-shards`
yet. The first publish that finds it so runs `index_before_shards` first: each old CR not on
its shard is copied there (its record and Markdown as they are, plus the indexes by
environment, of open CRs and by artifact) in one commit per shard, and main records, in the
same atomic push, the commit up to which CRs were filed on main alone. A CR's history is then
its shard's log followed by main's log up to that commit (`history_before_shards`): nothing is
rewritten, and the old commits keep their signatures.
"""

from __future__ import annotations

import time

from blocks.change_index import artifact_entries
from blocks.change_layout import (
    BEFORE_SHARDS,
    BRANCH,
    CHANGES_DIR,
    PUBLISHED,
    SHARD_REFS,
    change_paths,
    index_entries,
    shard_branch,
)
from blocks.gitrepo import GitRemote, RefConflict
from blocks.gitrepo.objects import Blob
from changeflow.change_ids import is_change_id
from changeflow.stored import stored_change_request

__all__ = ["INDEX_SUBJECT", "before_shards", "index_before_shards", "unindexed"]

INDEX_SUBJECT = "index the change requests filed before shards"
_MAIN = f"refs/heads/{BRANCH}"


def before_shards(git: GitRemote) -> str | None:
    """The main commit up to which CRs were filed on main alone, as the mirror last fetched:
    None when there is none (a repo born with shards), main when it is not indexed yet."""
    main = git.resolve(_MAIN)
    if main is None:
        return None
    state = git.read_files(main, [BEFORE_SHARDS])
    if BEFORE_SHARDS not in state:
        return main
    return state[BEFORE_SHARDS].decode().strip() or None


def unindexed(git: GitRemote, main: str) -> dict[str, tuple[str, str | None]]:
    """The CRs on main (at commit `main`) that their shard does not hold: id → (record blob,
    Markdown blob or None). One read of main's folder and one of each shard's."""
    shards = git.refs(SHARD_REFS)
    refs = sorted(shards)
    trees = git.read_trees([f"{main}:{CHANGES_DIR}", *(f"{shards[r]}:{CHANGES_DIR}" for r in refs)])
    old, held = trees[0] or {}, dict(zip(refs, trees[1:], strict=True))
    found: dict[str, tuple[str, str | None]] = {}
    for name, (_, kind, sha) in old.items():
        change_id = name.removesuffix(".json")
        if kind != "blob" or not name.endswith(".json") or not is_change_id(change_id):
            continue
        if name in (held.get(f"refs/heads/{shard_branch(change_id)}") or {}):
            continue
        markdown = old.get(f"{change_id}.md")
        found[change_id] = (sha, markdown[2] if markdown else None)
    return found


def index_before_shards(git: GitRemote) -> None:
    """Copy the CRs filed before shards onto their shards and mark main, in one atomic push
    (nothing to do when main is marked already, or absent).

    Raises:
        IntegrityError: when an old record is not a change request.
        RefConflict: when every attempt lost the race.
    """
    for attempt in range(git.attempts):
        started = time.monotonic()
        git.fetch()
        main = git.resolve(_MAIN)
        if main is None or BEFORE_SHARDS in git.read_files(main, [BEFORE_SHARDS]):
            return
        if _push_index(git, main):
            return
        time.sleep(git.backoff(attempt, time.monotonic() - started))
    raise RefConflict(f"gave up indexing the change requests of {BRANCH}")


def _push_index(git: GitRemote, main: str) -> bool:
    """One attempt: the shards' index commits and main's mark, pushed together."""
    old = unindexed(git, main)
    ids = sorted(old)
    records = git.read_blobs([old[i][0] for i in ids])
    files: dict[str, dict[str, bytes | Blob | None]] = {}
    for change_id, data in zip(ids, records, strict=True):
        if data is None:
            continue
        cr = stored_change_request(change_id, data, f" at {main[:12]}")
        record, markdown = change_paths(change_id)
        sha, md = old[change_id]
        entries: dict[str, bytes | Blob | None] = {
            record: Blob(sha),
            **index_entries(cr, Blob(sha)),
        }
        if md:
            entries[markdown] = Blob(md)
        entries.update(artifact_entries(cr))
        files.setdefault(f"refs/heads/{shard_branch(change_id)}", {}).update(entries)
    shards = git.refs(SHARD_REFS)
    text = git.read_files(main, [PUBLISHED]).get(PUBLISHED, b"").decode()
    recorded = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    updates: dict[str, str] = {}
    leases: dict[str, str | None] = {}
    for ref, changes in sorted(files.items()):
        parent = shards.get(ref)
        count = sum(
            1 for path in changes if path.startswith(f"{CHANGES_DIR}/") and path.endswith(".json")
        )
        message = f"{INDEX_SUBJECT}\n\n{count} of them, as main showed them at {main}.\n"
        new = git.make_commit(parent, changes, message)
        if new is None or new == parent:
            continue
        updates[ref], leases[ref] = new, parent
        if recorded.get(ref) == parent:  # main shows all of it, this commit too (same files)
            recorded[ref] = new
    mark = {
        BEFORE_SHARDS: f"{main}\n".encode(),
        PUBLISHED: "".join(f"{r} {s}\n" for r, s in sorted(recorded.items())).encode(),
    }
    subject = f"{INDEX_SUBJECT} ({len(ids)})"
    updates[_MAIN] = git.make_commit(main, mark, subject) or main
    leases[_MAIN] = main
    return git.push_refs(updates, leases)
