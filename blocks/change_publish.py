"""Bringing `main`, the browsable copy of the change-management repo, up to date with the shards.

Every write ends with main showing it, but a burst of filings publishes about once. A CR's id
ticket (`blocks.gitrepo.counter`) lives until the push that commits the CR on its shard
deletes it, so the remote's tickets say which filings are still in flight, and the remote
orders their landings. A filing that lands while others are in flight returns at once: the
last of them to land lists the tickets after every other landed, finds none, and publishes
them all. Tickets older than `YOUNG_S` do not hold anyone back (their writer may have died):
then the writer publishes itself. Whoever publishes carries along what the others wrote, and
a publish that finds main showing it already writes nothing.

Writers that land at nearly the same time may all find no ticket left: one of them publishes,
the one that creates the baton `refs/changeflow/publishing` (a blob holding the second it was
taken; its deletion rides on the push to main). One that finds the baton held returns: its
holder lists the shards once more after letting go, and publishes again if any moved.
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Mapping

from blocks.change_layout import (
    BEFORE_SHARDS,
    BRANCH,
    CHANGES_DIR,
    COUNTER,
    PUBLISHED,
    SHARD_REFS,
    changed_entries,
    published_note,
)
from blocks.change_migration import index_before_shards
from blocks.gitrepo import GitError, GitRemote, RefConflict
from blocks.gitrepo.objects import Blob
from changeflow.ports import Commit

__all__ = ["BATON", "YOUNG_S", "publish", "settle"]

YOUNG_S = 10.0
BATON = "refs/changeflow/publishing"
# a baton holder publishes again while shards moved meanwhile, at most this many times (a shard
# rewritten by hand, behind what main shows, would move it forever)
_ROUNDS = 3


class _Unindexed(Exception):
    """main holds CRs filed before shards that are not indexed on their shards yet."""


def settle(git: GitRemote, branch: str | None, head: str | None, *, burst: bool = True) -> None:
    """Make sure main shows what a filing just committed on its shard (its ticket deleted in
    that push; `branch` and `head` None for a filing that failed), publishing as few times as
    a burst of filings allows: not at all while another filing begun less than `YOUNG_S` ago
    is still in flight, or while another writer holds the baton (one listing). A filing that
    saw no other ticket while it took its id (`burst` False) publishes without the baton: a
    writer landing beside it only publishes once more."""
    listed = git.listing(f"{COUNTER}.tickets/*", BATON)
    rounds = 0
    for _ in range(git.attempts):
        if any(age < YOUNG_S for age in git.ticket_ages(COUNTER, listed).values()):
            return  # the last of those to land publishes this one too
        if not burst:
            publish(git, branch, head)
            return
        held = listed.get(BATON)
        if held is not None and _age_s(git, held) < YOUNG_S:
            return  # its holder looks at the shards again after letting go
        mine = git._hash_blobs([f"{int(time.time())}\n".encode()])[0]
        if git.push_refs({BATON: mine}, {BATON: held}):
            shown = publish(git, branch, head, release={BATON: mine})
            heads = git.listing(f"{SHARD_REFS}*")
            rounds += 1
            if rounds == _ROUNDS or all(shown.get(r) == sha for r, sha in heads.items()):
                return  # nothing landed since the publish read the shards
        listed = git.listing(f"{COUNTER}.tickets/*", BATON)
    raise RefConflict(f"gave up publishing {BRANCH} after {git.attempts} attempts")


def _age_s(git: GitRemote, baton: str) -> float:
    """Seconds since the baton was taken, from the second its blob holds (recognised by its
    object id among the last two minutes'); infinite when it is older or unreadable."""
    now = int(time.time())
    for second in range(now + 5, now - 120, -1):
        if git._object_id("blob", f"{second}\n".encode()) == baton:
            return float(now - second)
    return float("inf")


def publish(
    git: GitRemote,
    branch: str | None,
    head: str | None,
    *,
    release: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Show on main every CR version the shards hold and main does not yet, until main shows
    `head` of shard `branch` (the writer's own; None: whatever is there); return the shard
    heads main shows then.

    Only shards ahead of what main records are read. A repo with CRs filed before shards has
    them indexed first (`blocks.change_migration`). `release` (the baton) is deleted in the
    push to main, or on its own when there was nothing to push.
    """
    pushed = [False]
    try:
        for _ in range(2):
            try:
                return _publish(git, branch, head, dict(release or {}), pushed)
            except _Unindexed:
                index_before_shards(git)
        raise RefConflict(f"main lost {BEFORE_SHARDS} while it was being published")
    finally:
        if release and not pushed[0]:  # the push to main took it along otherwise
            with contextlib.suppress(GitError):
                git.push_refs(dict.fromkeys(release, ""), dict(release))


def _publish(
    git: GitRemote,
    branch: str | None,
    head: str | None,
    release: dict[str, str],
    pushed: builtins.list[bool],
) -> dict[str, str]:
    mine = f"refs/heads/{branch}" if branch else ""
    shown: builtins.list[Commit] = []
    final: dict[str, str] = {}
    parents: builtins.list[str | None] = [None]

    def change(parent: str | None) -> Mapping[str, bytes | Blob | None] | None:
        parents[0] = parent
        state = git.read_files(parent, [PUBLISHED, BEFORE_SHARDS]) if parent else {}
        if parent is not None and BEFORE_SHARDS not in state:
            raise _Unindexed
        text = state.get(PUBLISHED, b"").decode()
        recorded = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
        final.clear()
        final.update(recorded)
        if head is not None and recorded.get(mine) == head:
            return None
        moved = {r: s for r, s in git.refs(SHARD_REFS).items() if recorded.get(r) != s}
        bases = [recorded[r] for r in moved if r in recorded]
        commits = git.commits_between(list(moved.values()), bases)
        new = {c.commit for c in commits}
        ahead = {r: s for r, s in moved.items() if s in new}
        if not ahead or (head is not None and head not in new):
            return None  # main shows it already (and maybe more of its shard)
        # one process reads each shard's folder now and as main last showed it
        names = [f"{s}:{CHANGES_DIR}" for s in ahead.values()]
        names += [f"{recorded[r]}:{CHANGES_DIR}" for r in ahead if r in recorded]
        trees = iter([t or {} for t in git.read_trees(names)])
        now = [next(trees) for _ in ahead]
        files: dict[str, bytes | Blob | None] = {}
        for ref, tree in zip(ahead, now, strict=True):
            files.update(changed_entries(tree, next(trees) if ref in recorded else {}))
        recorded.update(ahead)
        final.update(ahead)
        files[PUBLISHED] = "".join(f"{r} {s}\n" for r, s in sorted(recorded.items())).encode()
        if parent is None:
            files[BEFORE_SHARDS] = b""  # a new main: no CR was ever filed before shards
        shown[:] = commits
        return files

    new = git.commit(
        BRANCH,
        change,
        lambda: published_note(shown)[0],
        author=lambda: published_note(shown)[1],
        release=release,
    )
    pushed[0] = new is not None and new != parents[0]
    return final
