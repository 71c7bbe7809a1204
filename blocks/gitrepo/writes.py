"""Writes to the remote: plumbing commits and refs, pushed with a compare-and-swap.

`GitRemote` is the facade the blocks use: the mirror and its object reads (`GitObjects`) plus
the writes here. A commit is built from blobs and trees only (never a work tree or an index)
and pushed so that it lands only on the head it was built on; when another writer got there
first, the change is applied again on the new head, after a jittered back-off.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import EllipsisType
from typing import Any

from blocks.gitrepo.errors import RefConflict, full_ref
from blocks.gitrepo.mirror import COMMITTER, DEFAULT_AUTHOR, NETWORK_TIMEOUT, git_failure
from blocks.gitrepo.objects import GitObjects

__all__ = ["GitRemote"]

_AUTHOR_RE = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>]*)>\s*$")
# Messages of a push that lost a race: the remote ref is not where the push expected it.
_RACE_MARKERS = (
    "fetch first",
    "non-fast-forward",
    "stale info",
    "already exists",
    "cannot lock ref",
    "but expected",
    "incorrect old value",
)


def _split_author(author: str) -> tuple[str, str]:
    match = _AUTHOR_RE.match(author)
    if match and match["name"] and match["email"]:
        return match["name"], match["email"]
    return author.strip() or COMMITTER[0], COMMITTER[1]


class GitRemote(GitObjects):
    """A bare git remote, read through a local bare mirror and written with CAS pushes.

    Several `GitRemote` objects (threads or processes) may share one `cache_dir`: the mirror is
    guarded by an `flock` on `<mirror>.lock` while it is fetched into or written to. Reads
    (`list_files`, `read_files`, `diff`, `log`, `resolve`) see the mirror as of the last fetch
    and take no lock: git objects never change and refs are updated atomically.

    Args:
        url: the remote's git URL (any URL git understands; credentials in it are never
            printed).
        cache_dir: folder holding the mirror `<sha256(url)[:16]>.git` and its lock file.
        attempts: how many times `commit` tries before giving up on a busy branch.
        timeout: seconds after which a fetch or push is killed.
    """

    backoff_base = 0.02
    backoff_cap = 2.0

    def __init__(
        self,
        url: str,
        cache_dir: Path | str,
        *,
        attempts: int = 40,
        timeout: float = NETWORK_TIMEOUT,
    ) -> None:
        super().__init__(url, cache_dir, timeout=timeout)
        self.attempts = attempts

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled or deep-copied (task runners, model copies) as its settings: the copy opens
        # the same mirror.
        return (_restore, (self.url, str(self.cache_dir), self.attempts, self.timeout))

    def _push(self, source: str, ref: str, lease: str | EllipsisType | None) -> bool:
        """Push `source` to the remote `ref`: True when done, False when a CAS lost the race.

        `lease` is the value the remote ref must have (None: must not exist); `...` pushes
        without force, which for a commit on top of the old head is itself a compare-and-swap.
        """
        args = ["push", "--porcelain", "--quiet"]
        if lease is not ...:
            args.append(f"--force-with-lease={ref}:{lease or ''}")
        args += ["origin", f"{source}:{ref}" if source else f":{ref}"]
        status, out, err = self._run(*args, network=True, check=False)
        if status == 0:
            return True
        report = out.decode("utf-8", "replace") + "\n" + err
        rejected = any(line.startswith("!") for line in report.splitlines())
        if rejected and any(marker in report for marker in _RACE_MARKERS):
            return False
        raise git_failure(f"push to {ref}", status, report)

    def _backoff(self, attempt: int, took: float) -> float:
        # Full jitter over a window that grows linearly, in units of how long an attempt
        # takes here: losers spread over about as many slots as there are contenders, so the
        # remote is rarely idle and rarely raced (measured better than exponential backoff).
        slot = max(took, self.backoff_base)
        return random.uniform(0.0, min(self.backoff_cap, slot * (attempt + 1)))

    def commit(
        self,
        branch: str,
        change: Callable[[str | None], Mapping[str, bytes | None] | None],
        message: str | Callable[[], str],
        *,
        author: str = DEFAULT_AUTHOR,
        start_point: str | None = None,
    ) -> str | None:
        """Commit `change(parent)` on `branch` and push it with a compare-and-swap, retrying.

        Each attempt fetches, takes the branch head as parent (or `start_point` when the branch
        does not exist yet; an orphan commit without either), and calls `change(parent)`; it
        returns path → new content (None deletes) or None / {} for nothing to do. When the push
        finds the branch moved, `change` is called again on the new head. History stays linear.

        `change` runs with the mirror locked (the lock is re-entrant within a thread), so it
        should only read (`read_files`, `list_files`, `diff`, `path_types`).

        Args:
            branch: branch name (without `refs/heads/`).
            change: builds the change from the parent commit.
            message: the commit message, or a callable giving it after `change` ran.
            author: "name <email>" of the author (the committer is changeflow).
            start_point: ref the branch starts from when it does not exist.

        Returns:
            The new head; the parent when the change altered nothing; None when `change`
            returned nothing to do.

        Raises:
            RefConflict: when every attempt lost the race.
            GitError: when a push fails for another reason.
        """
        ref = full_ref(f"refs/heads/{branch}")
        name, email = _split_author(author)
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
        for attempt in range(self.attempts):
            with self._locked():
                started = time.monotonic()
                self._fetch()
                head, base = self._head_and_tree(ref)
                if head:
                    self._remember(head)
                parent = head
                if parent is None and start_point is not None:
                    parent = self._commit_of(start_point)
                    base = self.tree_of(parent)
                changes = change(parent)
                if not changes:
                    return None
                tree = self._write_tree(base, changes)
                if tree == base or (parent is None and tree == self._empty()):
                    if head is not None or parent is None:
                        return head  # nothing changed: no empty commit
                    new = parent  # a new branch with nothing new on it: just create it
                else:
                    text = (message() if callable(message) else message).rstrip("\n") + "\n"
                    args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-"]
                    new = self._run(*args, stdin=text.encode("utf-8"), env=env)[1].decode().strip()
                # A plain push of a child of the old head is a CAS (non-fast-forward otherwise);
                # a new branch must still not exist.
                if self._push(new, ref, ... if head else None):
                    return new
            # Back off outside the lock, so writers sharing the mirror can go meanwhile.
            time.sleep(self._backoff(attempt, time.monotonic() - started))
        raise RefConflict(f"gave up writing to {branch} after {self.attempts} attempts")

    def set_ref(self, ref: str, commit: str, *, expected: str | EllipsisType | None = ...) -> None:
        """Create or move a branch or tag on the remote with a compare-and-swap.

        Args:
            ref: full ref (`refs/heads/…` or `refs/tags/…`).
            commit: commit (or ref) to point it at; it must be in the mirror.
            expected: the value the remote ref must have now: a sha, None for "must not
                exist", or left out for "what the mirror sees after a fresh fetch".

        Raises:
            RefConflict: when the remote ref is not at `expected`.
        """
        ref = full_ref(ref)
        with self._locked():
            if expected is ...:
                self._fetch()
                expected = self._ref_value(ref)
            target = self._commit_of(commit)
            if not self._push(target, ref, expected):
                raise RefConflict(f"{ref} is not at {expected or '(absent)'} on the remote")

    def delete_ref(self, ref: str, *, expected: str | EllipsisType | None = ...) -> None:
        """Delete a branch or tag on the remote (nothing to do when it is absent).

        Args:
            ref: full ref (`refs/heads/…` or `refs/tags/…`).
            expected: the value the remote ref must have now (None: nothing to delete), or
                left out for "what the mirror sees after a fresh fetch".

        Raises:
            RefConflict: when the remote ref is not at `expected`.
        """
        ref = full_ref(ref)
        with self._locked():
            if expected is ...:
                self._fetch()
                expected = self._ref_value(ref)
            if expected is None:
                return
            if not self._push("", ref, expected):
                raise RefConflict(f"{ref} is not at {expected} on the remote")


def _restore(url: str, cache_dir: str, attempts: int, timeout: float) -> GitRemote:
    return GitRemote(url, cache_dir, attempts=attempts, timeout=timeout)
