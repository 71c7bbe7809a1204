"""Who wrote a commit: its author and signing key, read from a git checkout."""

from __future__ import annotations

import re
from pathlib import Path

from git import Repo
from git.exc import GitError

from changeflow.authors import CommitAuthor, parse_commit

__all__ = ["commit_author"]

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def commit_author(workdir: Path, commit_sha: str) -> CommitAuthor | None:
    """The author of `commit_sha` in the git checkout at (or above) `workdir`.

    None when there is no checkout there or it does not hold the commit: the entry is then
    recorded without an author, as one recorded before authors were.
    """
    if not _SHA_RE.match(commit_sha):  # never an option or a revision expression for git
        return None
    try:
        repo = Repo(workdir, search_parent_directories=True)
        raw = repo.git.cat_file("commit", commit_sha)
    except (GitError, OSError, ValueError):
        return None
    return parse_commit(raw)
