"""What can go wrong talking to a git remote, and the checks on the names given to it."""

from __future__ import annotations

from changeflow.errors import ServiceTimeout, StorageUnavailable
from changeflow.labels import check_ref_name

__all__ = [
    "GitError",
    "RefConflict",
    "RemoteTimeout",
    "RemoteUnavailable",
    "UnknownRef",
    "check_path",
    "check_ref_name",
    "full_ref",
]


class GitError(RuntimeError):
    """A git command failed; the message never contains URL credentials."""


class UnknownRef(GitError, LookupError):
    """A branch, tag or commit does not exist (in the mirror, after the last fetch)."""


class RefConflict(GitError):
    """The remote ref was not at the expected value (a compare-and-swap lost)."""


class RemoteUnavailable(GitError, StorageUnavailable):
    """The remote could not be reached (the CLI: one line, exit 1)."""


class RemoteTimeout(RemoteUnavailable, ServiceTimeout):
    """The remote took the connection but stopped answering: git gave up, or was killed."""


def full_ref(ref: str) -> str:
    """Check a full branch or tag ref (`refs/heads/…`, `refs/tags/…`) and return it.

    Raises:
        ValueError: for anything else, or a bad name under the prefix.
    """
    if not ref.startswith(("refs/heads/", "refs/tags/")):
        raise ValueError(f"want a full branch or tag ref (refs/heads/…, refs/tags/…): {ref!r}")
    check_ref_name(ref.split("/", 2)[2])
    return ref


def check_path(path: str) -> list[str]:
    """Check a file path inside a repository and return its parts.

    Raises:
        ValueError: for an empty, absolute-looking, `..`, `.git` or multi-line path.
    """
    parts = path.split("/")
    if not path or any(p in ("", ".", "..", ".git") for p in parts) or "\0" in path:
        raise ValueError(f"not a valid repository path: {path!r}")
    if any(c in path for c in "\n\r"):
        raise ValueError(f"repository path must not contain line breaks: {path!r}")
    return parts
