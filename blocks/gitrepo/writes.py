"""Writes to the remote: plumbing commits and refs, pushed with a compare-and-swap.

`GitRemote` is the facade the blocks use: the mirror and its object reads (`GitObjects`), the
pushes (`GitPushes`) and counters (`GitCounters`), plus the writes here. A commit is built from
blobs and trees only (never a work tree or an index) and pushed so that it lands only on the
head it was built on; when another writer got there first, the change is applied again on the
new head, after a jittered back-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import EllipsisType
from typing import Any

from blocks.gitrepo.counter import GitCounters
from blocks.gitrepo.errors import RefConflict, full_ref
from blocks.gitrepo.mirror import DEFAULT_AUTHOR, NETWORK_TIMEOUT
from blocks.gitrepo.objects import Blob

__all__ = ["GitRemote"]


class GitRemote(GitCounters):
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
        # the change-management repo's commits are SSH-signed with this key (issue 12)
        self.signing_key: Path | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled or deep-copied (task runners, model copies) as its settings: the copy opens
        # the same mirror.
        key = str(self.signing_key) if self.signing_key else None
        return (_restore, (self.url, str(self.cache_dir), self.attempts, self.timeout, key))

    def commit(
        self,
        branch: str,
        change: Callable[[str | None], Mapping[str, bytes | Blob | None] | None],
        message: str | Callable[[], str],
        *,
        author: str | Callable[[], str] = DEFAULT_AUTHOR,
        start_point: str | None = None,
        signing_key: Path | None = None,
        narrow: bool = False,
        release: Mapping[str, str] | None = None,
        listed: Mapping[str, str] | None = None,
    ) -> str | None:
        """Commit `change(parent)` on `branch` and push it with a compare-and-swap, retrying.

        Each attempt fetches, takes the branch head as parent (or `start_point` when the branch
        does not exist yet; an orphan commit without either), and calls `change(parent)`; it
        returns path → new content (a `Blob` already in the mirror, None deletes) or None / {}
        for nothing to do. When the push finds the branch moved, `change` is called again on
        the new head. History stays linear.

        `change` runs with the mirror locked (the lock is re-entrant within a thread), so it
        should only read (`read_files`, `list_files`, `diff`, `path_types`).

        Args:
            branch: branch name (without `refs/heads/`).
            change: builds the change from the parent commit.
            message: the commit message, or a callable giving it after `change` ran.
            author: "name <email>" of the author (the committer is changeflow), or a callable
                giving it after `change` ran.
            start_point: ref the branch starts from when it does not exist.
            signing_key: an OpenSSH private key file: the commit carries its SSH signature
                (git's `gpg.format=ssh`; `signing_key` defaults to the remote's own).
            narrow: fetch only this branch, and only when the remote's head is not in the
                mirror (`change` then reads nothing else): one branch of many that writers
                use at once.
            release: refs deleted in the same atomic push, each while it still holds the
                value given (one that no longer does is left alone), e.g. a counter's ticket.
            listed: the remote's refs as just listed: the first attempt trusts them instead of
                listing again (a stale head only costs a lost race).

        Returns:
            The new head; the parent when the change altered nothing; None when `change`
            returned nothing to do.

        Raises:
            RefConflict: when every attempt lost the race.
            GitError: when a push fails for another reason.
        """
        ref = full_ref(f"refs/heads/{branch}")
        release = dict(release or {})
        known = dict(listed) if listed is not None else None
        for attempt in range(self.attempts):
            with self._locked():
                started = time.monotonic()
                if narrow or release:
                    remote = known if known is not None else self.listing(ref, *release)
                    release = {r: v for r, v in release.items() if remote.get(r) == v}
                known = None
                if narrow:
                    head, base = self._narrow_fetch(ref, remote.get(ref))
                else:
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
                    text = message() if callable(message) else message
                    who = author() if callable(author) else author
                    new = self._commit_object(tree, parent, text, who, signing_key)
                if release:
                    updates = {ref: new, **dict.fromkeys(release, "")}
                    if self.push_refs(updates, {ref: head, **release}):
                        return new
                # A plain push of a child of the old head is a CAS (non-fast-forward otherwise);
                # a new branch must still not exist.
                elif self._push(new, ref, ... if head else None):
                    return new
            # Back off outside the lock, so writers sharing the mirror can go meanwhile.
            time.sleep(self.backoff(attempt, time.monotonic() - started))
        raise RefConflict(f"gave up writing to {branch} after {self.attempts} attempts")

    def _narrow_fetch(self, ref: str, remote: str | None) -> tuple[str | None, str | None]:
        """The head and tree of branch `ref` at `remote` (its value on the remote), fetching
        that branch alone when the mirror does not hold it there."""
        if remote is None:
            return None, None  # not on the remote (whatever the mirror remembers)
        head, base = self._head_and_tree(ref)
        if head != remote:
            self._run(
                "fetch", "--quiet", "--force", "--no-tags", "--no-write-fetch-head",
                "origin", f"+{ref}:{ref}", network=True,
            )  # fmt: skip
            head, base = self._head_and_tree(ref)
        return head, base

    def make_commit(
        self,
        parent: str | None,
        changes: Mapping[str, bytes | Blob | None],
        message: str,
        *,
        author: str = DEFAULT_AUTHOR,
    ) -> str | None:
        """Write, without pushing, the commit of `changes` on `parent` (a commit in the mirror;
        None for an orphan); return it, or `parent` when nothing changes.

        For writes that move several refs in one push (`push_refs`).
        """
        with self._locked():
            base = self.tree_of(parent) if parent else None
            tree = self._write_tree(base, changes)
            if tree == base or (parent is None and tree == self._empty()):
                return parent
            return self._commit_object(tree, parent, message, author)

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

    def set_refs(self, refs: Mapping[str, str], expected: Mapping[str, str | None]) -> None:
        """Create or move several branches or tags in one atomic push: all of them or none.

        A ref already at its commit stays, whatever its lease said: git checks no lease of a
        ref it need not move, and whoever put it there wanted the same.

        Args:
            refs: full ref -> commit (or ref) to point it at; each must be in the mirror.
            expected: full ref -> the value it must have now (None: must not exist).

        Raises:
            RefConflict: when one of them is not at its `expected` on the remote.
        """
        with self._locked():
            targets = {full_ref(ref): self._commit_of(commit) for ref, commit in refs.items()}
            leases = {full_ref(ref): value for ref, value in expected.items()}
            if not self.push_refs(targets, leases):
                raise RefConflict(f"one of {', '.join(sorted(targets))} moved on the remote")

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


def _restore(
    url: str, cache_dir: str, attempts: int, timeout: float, key: str | None = None
) -> GitRemote:
    remote = GitRemote(url, cache_dir, attempts=attempts, timeout=timeout)
    remote.signing_key = Path(key) if key else None
    return remote
