"""Pushes to the remote under compare-and-swap, listings of its refs, and commit objects.

What `counter` (ids) and `writes` (branches) build on. A push names the value each remote ref
must have (a lease); one that finds another value lost a race and says so (False), anything
else is an error. Several refs can move in one atomic push: all or none.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from pathlib import Path
from types import EllipsisType

from blocks.gitrepo.mirror import COMMITTER, git_failure
from blocks.gitrepo.objects import GitObjects

__all__ = ["GitPushes"]

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
    "atomic push failed",
)


def _split_author(author: str) -> tuple[str, str]:
    match = _AUTHOR_RE.match(author)
    if match and match["name"] and match["email"]:
        return match["name"], match["email"]
    return author.strip() or COMMITTER[0], COMMITTER[1]


class GitPushes(GitObjects):
    """Compare-and-swap pushes, listings of the remote's refs, and commit objects."""

    backoff_base = 0.02
    backoff_cap = 2.0
    # the change-management repo's commits are SSH-signed with this key (issue 12)
    signing_key: Path | None = None

    def listing(self, *patterns: str) -> dict[str, str]:
        """Return ref → object sha of the remote's refs matching `patterns` (`ls-remote`; every
        ref when none is given)."""
        out = self._run("ls-remote", "origin", *patterns, network=True)[1].decode()
        return {ref: sha for sha, _, ref in (line.partition("\t") for line in out.splitlines())}

    def push_refs(self, updates: Mapping[str, str], leases: Mapping[str, str | None]) -> bool:
        """Move every ref of `updates` to its value ("" deletes it) in one atomic push, each only
        from the value `leases` names (None or absent: the ref must not exist).

        Returns:
            True when every ref moved, False when one of them was not where its lease said (a
            race lost: nothing moved).

        Raises:
            GitError: when the push fails for another reason.
        """
        if not updates:
            return True
        args = ["push", "--porcelain", "--quiet"]
        if len(updates) > 1:
            args.append("--atomic")
        args += [f"--force-with-lease={r}:{leases.get(r) or ''}" for r in updates]
        specs = [f"{v}:{r}" if v else f":{r}" for r, v in updates.items()]
        status, out, err = self._run(*args, "origin", *specs, network=True, check=False)
        if status == 0:
            return True
        report = out.decode("utf-8", "replace") + "\n" + err
        rejected = any(line.startswith("!") for line in report.splitlines())
        if rejected and any(marker in report for marker in _RACE_MARKERS):
            return False
        raise git_failure("push", status, report)

    def _push(
        self, source: str, ref: str, lease: str | EllipsisType | None, *, moves: bool = False
    ) -> bool:
        """Push `source` to the remote `ref`: True when done, False when a CAS lost the race.

        `lease` is the value the remote ref must have (None: must not exist); `...` pushes
        without force, which for a commit on top of the old head is itself a compare-and-swap.
        With `moves`, a ref already at `source` also lost: git calls that push "up to date"
        without looking at the lease, but another writer put it there.
        """
        args = ["push", "--porcelain", "--verbose" if moves else "--quiet"]
        if lease is not ...:
            args.append(f"--force-with-lease={ref}:{lease or ''}")
        args += ["origin", f"{source}:{ref}" if source else f":{ref}"]
        status, out, err = self._run(*args, network=True, check=False)
        if status == 0:
            lines = out.decode("utf-8", "replace").splitlines()
            return not (moves and any(line.startswith("=\t") for line in lines))
        report = out.decode("utf-8", "replace") + "\n" + err
        rejected = any(line.startswith("!") for line in report.splitlines())
        if rejected and any(marker in report for marker in _RACE_MARKERS):
            return False
        raise git_failure(f"push to {ref}", status, report)

    def backoff(self, attempt: int, took: float) -> float:
        """Seconds to wait after losing race number `attempt` (each took about `took`)."""
        # Full jitter over a window that grows linearly, in units of how long an attempt
        # takes here: losers spread over about as many slots as there are contenders, so the
        # remote is rarely idle and rarely raced (measured better than exponential backoff).
        slot = max(took, self.backoff_base)
        return random.uniform(0.0, min(self.backoff_cap, slot * (attempt + 1)))

    def _commit_object(
        self,
        tree: str,
        parent: str | None,
        message: str,
        author: str,
        signing_key: Path | None = None,
    ) -> str:
        """Write the commit of `tree` on `parent` (`commit-tree`, SSH-signed with `signing_key`
        or the remote's own key when there is one); return its sha."""
        text = message.rstrip("\n") + "\n"
        name, email = _split_author(author)
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
        args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-"]
        if key := signing_key or self.signing_key:
            # -c before the command: the key is never in the mirror's config
            sign = ["-c", "gpg.format=ssh", "-c", f"user.signingKey={key}"]
            args = [*sign, "commit-tree", "-S", *args[1:]]
        return self._run(*args, stdin=text.encode("utf-8"), env=env)[1].decode().strip()
