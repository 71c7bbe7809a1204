"""Plumbing against a bare git remote: a local bare mirror, reads by object, CAS pushes.

The remote is the source of truth. The blocks use the facade `GitRemote`, built in layers:

- `mirror`: the local bare mirror in a cache folder, its lock, the git process environment,
  fetching, and the redaction of credentials in URLs (`GitMirror`);
- `objects` and `trees`: reading refs, trees, blobs, diffs and history, and writing blobs and
  trees, in Python (`packs`: loose objects, or one pack for many) (`GitObjects`);
- `pushes`: compare-and-swap pushes of one or many refs, listings, commit objects;
- `counter`: numbers taken from a counter ref by writers at once, through tickets;
- `writes`: commits and refs pushed with a compare-and-swap, retried on a race (`GitRemote`);
- `errors`: what can go wrong, and the checks on ref names and paths.

(Not named `git`: GitPython owns that name.)
"""

from __future__ import annotations

from blocks.gitrepo.errors import (
    GitError,
    RefConflict,
    RemoteTimeout,
    RemoteUnavailable,
    UnknownRef,
    check_ref_name,
)
from blocks.gitrepo.mirror import DEFAULT_AUTHOR, default_cache_dir, redact
from blocks.gitrepo.writes import GitRemote

__all__ = [
    "DEFAULT_AUTHOR",
    "GitError",
    "GitRemote",
    "RefConflict",
    "RemoteTimeout",
    "RemoteUnavailable",
    "UnknownRef",
    "check_ref_name",
    "default_cache_dir",
    "redact",
]
