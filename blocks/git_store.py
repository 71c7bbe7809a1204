"""Plumbing against a bare git remote: a local bare mirror, reads by object, CAS pushes.

The remote is the source of truth. `GitRemote` keeps a bare mirror of it in a cache folder,
reads trees and blobs from that mirror, and writes with plumbing only (blobs, trees, commits;
never a work tree or an index), pushing each new commit with a compare-and-swap on the remote
ref and re-applying the change on the new head when another writer got there first.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import EllipsisType
from typing import IO, Any

import git

__all__ = [
    "DEFAULT_AUTHOR",
    "GitError",
    "GitRemote",
    "RefConflict",
    "UnknownRef",
    "check_ref_name",
    "default_cache_dir",
    "redact",
]

DEFAULT_AUTHOR = "changeflow <changeflow@localhost>"
_COMMITTER = ("changeflow", "changeflow@localhost")
_HEX_RE = re.compile(r"^[0-9a-f]{4,64}$")
_AUTHOR_RE = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>]*)>\s*$")
_BAD_REF_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{")
_CREDENTIALS_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s]+@")
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
# A mirror's lock is held at most once per thread (the flock is per open file, so a second
# acquisition in the same thread would wait on itself).
_held = threading.local()


def redact(text: str) -> str:
    """Hide credentials embedded in URLs (`https://user:token@host` → `https://***@host`)."""
    return _CREDENTIALS_RE.sub(r"\g<scheme>***@", text)


def default_cache_dir() -> Path:
    """Return `$CHANGEFLOW_HOME/repos` (CHANGEFLOW_HOME defaults to `~/.changeflow`)."""
    home = os.environ.get("CHANGEFLOW_HOME") or "~/.changeflow"
    return Path(home).expanduser() / "repos"


def check_ref_name(name: str) -> str:
    """Check a branch or tag name the way `git check-ref-format` would, without a process.

    Raises:
        ValueError: naming what is wrong with `name`.
    """
    parts = name.split("/")
    if (
        not name
        or _BAD_REF_RE.search(name)
        or name.startswith(("-", "/"))
        or name.endswith(("/", ".", ".lock"))
        or any(not p or p.startswith(".") or p.endswith(".lock") for p in parts)
        or name == "@"
    ):
        raise ValueError(f"not a valid git branch or tag name: {name!r}")
    return name


class GitError(RuntimeError):
    """A git command failed; the message never contains URL credentials."""


class UnknownRef(GitError, LookupError):
    """A branch, tag or commit does not exist (in the mirror, after the last fetch)."""


class RefConflict(GitError):
    """The remote ref was not at the expected value (a compare-and-swap lost)."""


def _split_author(author: str) -> tuple[str, str]:
    match = _AUTHOR_RE.match(author)
    if match and match["name"] and match["email"]:
        return match["name"], match["email"]
    return author.strip() or _COMMITTER[0], _COMMITTER[1]


def _check_path(path: str) -> list[str]:
    parts = path.split("/")
    if not path or any(p in ("", ".", "..", ".git") for p in parts) or "\0" in path:
        raise ValueError(f"not a valid repository path: {path!r}")
    if any(c in path for c in "\n\r"):
        raise ValueError(f"repository path must not contain line breaks: {path!r}")
    return parts


class GitRemote:
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
        self, url: str, cache_dir: Path | str, *, attempts: int = 40, timeout: float = 300.0
    ) -> None:
        self.url = url
        self.cache_dir = Path(cache_dir).expanduser()
        self.attempts = attempts
        self.timeout = timeout
        name = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        self.path = self.cache_dir / f"{name}.git"
        self._lock_path = self.cache_dir / f"{name}.git.lock"
        self._env = self._environment()
        self._empty_tree: str | None = None
        self._known_commits: set[str] = set()
        self._init_mirror()
        self._repo = git.Repo(self.path)
        self._repo.git.update_environment(**self._env)

    def __repr__(self) -> str:
        return f"GitRemote({redact(self.url)!r}, {str(self.cache_dir)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled or deep-copied (task runners, model copies) as its settings: the copy opens
        # the same mirror.
        return (_restore, (self.url, str(self.cache_dir), self.attempts, self.timeout))

    # ----------------------------------------------------------------------------- plumbing

    def _environment(self) -> dict[str, str]:
        # No credential prompt may block a flow run waiting for a human who is not there, and
        # a fixed identity lets commits work on a machine with no git config.
        env = {
            "GIT_DIR": str(self.path),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": _COMMITTER[0],
            "GIT_AUTHOR_EMAIL": _COMMITTER[1],
            "GIT_COMMITTER_NAME": _COMMITTER[0],
            "GIT_COMMITTER_EMAIL": _COMMITTER[1],
        }
        return env

    def _run(
        self,
        *args: str,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        network: bool = False,
        check: bool = True,
    ) -> tuple[int, bytes, str]:
        """Run `git <args>` in the mirror; return (status, stdout bytes, stderr text)."""
        with contextlib.ExitStack() as stack:
            istream: IO[bytes] | None = None
            if stdin is not None:
                # GitPython hands istream to Popen as stdin, which needs a real file.
                istream = stack.enter_context(tempfile.TemporaryFile())
                istream.write(stdin)
                istream.seek(0)
            status, out, err = self._repo.git.execute(
                ["git", *args],
                istream=istream,
                with_extended_output=True,
                with_exceptions=False,
                stdout_as_string=False,
                strip_newline_in_stdout=False,
                env=env,
                kill_after_timeout=self.timeout if network else None,
            )
        if check and status != 0:
            raise GitError(redact(f"git {args[0]} failed ({status}): {err.strip()}"))
        return status, out, err

    def _text(self, *args: str, stdin: bytes | None = None) -> str:
        return self._run(*args, stdin=stdin)[1].decode("utf-8").strip()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        held: set[str] = _held.__dict__.setdefault("paths", set())
        key = str(self._lock_path)
        if key in held:
            yield
            return
        with open(self._lock_path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            held.add(key)
            try:
                yield
            finally:
                held.discard(key)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _init_mirror(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if (self.path / "config").is_file():
            return
        with self._locked():
            if (self.path / "config").is_file():
                return  # another process made it while this one waited
            # Build it aside and rename it into place, so no process ever sees half a mirror.
            tmp = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=f"{self.path.name}.init-"))
            try:
                env = {**self._env, "GIT_DIR": str(tmp)}
                status, _, err = git.Git(str(self.cache_dir)).execute(
                    ["git", "init", "--bare", "--quiet"],
                    with_extended_output=True,
                    with_exceptions=False,
                    env=env,
                )
                if status != 0:
                    raise GitError(f"git init failed ({status}): {err.strip()}")
                # Written through GitPython's config writer, not `git config`, so the URL
                # (which may hold a token) never appears on a command line.
                with git.Repo(tmp).config_writer() as config:
                    config.set_value('remote "origin"', "url", self.url)
                    # Fetch refspecs mapping the remote's refs onto the mirror's own let a
                    # successful push update the mirror's ref in the same process.
                    config.set_value('remote "origin"', "fetch", "+refs/heads/*:refs/heads/*")
                    config.add_value('remote "origin"', "fetch", "+refs/tags/*:refs/tags/*")
                    config.set_value("core", "logAllRefUpdates", "false")
                    config.set_value("fetch", "showForcedUpdates", "false")
                if self.path.exists():
                    shutil.rmtree(self.path)  # a leftover without a config: not a mirror
                os.rename(tmp, self.path)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)

    def _fetch(self) -> None:
        # A fetch that finds nothing new still checks that every remote tip is connected,
        # walking every tree in the inventory: its cost grows with the inventory. Listing the
        # remote refs and comparing them with the mirror's is cheap and usually ends here.
        listed = self._run("ls-remote", "--refs", "--heads", "--tags", "origin", network=True)[1]
        remote = sorted(listed.decode("utf-8", "replace").splitlines())
        local = self._run(
            "for-each-ref", "--format=%(objectname)%09%(refname)", "refs/heads/", "refs/tags/"
        )[1]
        if remote == sorted(local.decode("utf-8", "replace").splitlines()):
            return
        self._run(
            "fetch",
            "--quiet",
            "--prune",
            "--force",
            "--no-tags",
            "--update-head-ok",
            "--no-write-fetch-head",
            "origin",
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
            network=True,
        )

    def _cat_batch(self, names: list[str]) -> list[tuple[str, bytes] | None]:
        """Read many objects with one `cat-file --batch`: (type, content) or None if missing."""
        if not names:
            return []
        out = self._run("cat-file", "--batch", stdin="".join(f"{n}\n" for n in names).encode())[1]
        results: list[tuple[str, bytes] | None] = []
        pos = 0
        for _ in names:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode("utf-8", "replace")
            pos = end + 1
            fields = header.rsplit(" ", 2)
            if len(fields) == 3 and fields[2].isdigit():
                size = int(fields[2])
                results.append((fields[1], out[pos : pos + size]))
                pos += size + 1  # the content is followed by a newline
            else:
                results.append(None)  # "<name> missing" or "<name> ambiguous"
        return results

    def _peel_many(self, names: list[str], kind: str = "commit") -> list[str | None]:
        """Peel each name to an object of `kind` with one process; None where impossible."""
        return self._peel_pairs([(name, kind) for name in names])

    def _peel_pairs(self, pairs: list[tuple[str, str]]) -> list[str | None]:
        found = self._run(
            "cat-file",
            "--batch-check=%(objectname) %(objecttype)",
            stdin="".join(f"{name}^{{{kind}}}\n" for name, kind in pairs).encode(),
        )[1].decode()
        shas: list[str | None] = []
        for (_, kind), line in zip(pairs, found.splitlines(), strict=True):
            sha, _, got = line.rpartition(" ")
            shas.append(sha if got == kind else None)
        return shas

    def _head_and_tree(self, ref: str) -> tuple[str | None, str | None]:
        """The commit a full ref points at and its tree, with one process."""
        commit, tree = self._peel_pairs([(ref, "commit"), (ref, "tree")])
        return commit, tree if commit else None

    def _ref_value(self, ref: str) -> str | None:
        """The raw value of a full ref in the mirror (a tag object for annotated tags)."""
        status, out, _ = self._run("rev-parse", "--verify", "--quiet", ref, check=False)
        return out.decode().strip() if status == 0 else None

    def _commit_of(self, ref: str) -> str:
        # A commit sha seen before needs no process: reads inside `commit` stay cheap.
        if ref in self._known_commits:
            return ref
        sha = self.resolve(ref)
        if sha is None:
            raise UnknownRef(f"unknown ref {ref!r}")
        self._remember(sha)
        return sha

    def _remember(self, sha: str) -> None:
        if len(self._known_commits) > 4096:
            self._known_commits.clear()
        self._known_commits.add(sha)

    def _ls_tree(self, tree: str) -> dict[str, tuple[str, str, str]]:
        out = self._run("ls-tree", "-z", tree)[1]
        entries: dict[str, tuple[str, str, str]] = {}
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, sha = meta.decode().split(" ")
            entries[name.decode("utf-8")] = (mode, kind, sha)
        return entries

    def _mktree(self, entries: dict[str, tuple[str, str, str]]) -> str:
        body = b"".join(
            f"{mode} {kind} {sha}\t{name}\0".encode() for name, (mode, kind, sha) in entries.items()
        )
        return self._text("mktree", "-z", stdin=body)

    def _hash_blobs(self, blobs: list[bytes]) -> list[str]:
        """Write blobs into the mirror with one `hash-object` process; return their shas."""
        if not blobs:
            return []
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".blobs-") as tmp:
            paths = []
            for i, data in enumerate(blobs):
                path = Path(tmp) / str(i)
                path.write_bytes(data)
                paths.append(str(path))
            out = self._text(
                "hash-object",
                "-w",
                "--no-filters",
                "--stdin-paths",
                stdin="\n".join(paths).encode(),
            )
        return out.split()

    def _build_tree(self, tree: str | None, node: dict[str, Any]) -> str | None:
        """Apply `node` (name → blob sha, None to delete, or a sub-node) to `tree`.

        Only the trees on changed paths are read and written; returns None for an empty tree.
        """
        entries = self._ls_tree(tree) if tree else {}
        before = dict(entries)
        for name, change in node.items():
            current = entries.get(name)
            if isinstance(change, dict):
                child = current[2] if current and current[1] == "tree" else None
                new = self._build_tree(child, change)
                if new is None:
                    entries.pop(name, None)
                else:
                    entries[name] = ("040000", "tree", new)
            elif change is None:
                entries.pop(name, None)
            else:
                mode = current[0] if current and current[1] == "blob" else "100644"
                entries[name] = (mode, "blob", change)
        if not entries:
            return None
        if tree and entries == before:
            return tree
        return self._mktree(entries)

    def _write_tree(self, base: str | None, changes: Mapping[str, bytes | None]) -> str:
        written = [(p, d) for p, d in sorted(changes.items()) if d is not None]
        shas = dict(
            zip([p for p, _ in written], self._hash_blobs([d for _, d in written]), strict=True)
        )
        root: dict[str, Any] = {}
        for path in sorted(changes):
            parts = _check_path(path)
            node = root
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(f"{path!r} is below the file {part!r} written too")
                node = child
            if isinstance(node.get(parts[-1]), dict):
                raise ValueError(f"{path!r} is written both as a file and as a folder")
            node[parts[-1]] = shas.get(path)
        return self._build_tree(base, root) or self._empty()

    def _empty(self) -> str:
        if self._empty_tree is None:
            self._empty_tree = self._mktree({})
        return self._empty_tree

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
        raise GitError(redact(f"git push to {ref} failed ({status}): {report.strip()}"))

    def _backoff(self, attempt: int, took: float) -> float:
        # Full jitter over a window that grows linearly, in units of how long an attempt
        # takes here: losers spread over about as many slots as there are contenders, so the
        # remote is rarely idle and rarely raced (measured better than exponential backoff).
        slot = max(took, self.backoff_base)
        return random.uniform(0.0, min(self.backoff_cap, slot * (attempt + 1)))

    @staticmethod
    def _full_ref(ref: str) -> str:
        if not ref.startswith(("refs/heads/", "refs/tags/")):
            raise ValueError(f"want a full branch or tag ref (refs/heads/…, refs/tags/…): {ref!r}")
        check_ref_name(ref.split("/", 2)[2])
        return ref

    # ------------------------------------------------------------------------------- reads

    def fetch(self) -> None:
        """Bring the mirror up to date with the remote (every branch and tag; prunes too)."""
        with self._locked():
            self._fetch()

    def resolve(self, ref: str) -> str | None:
        """Return the commit sha of a branch, tag, full ref or commit, or None if missing.

        Branches win over tags of the same name. Looks at the mirror as last fetched.
        """
        if not ref or any(c in ref for c in "\n\r\0"):
            return None
        candidates = [ref] if ref.startswith("refs/") else [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        if _HEX_RE.match(ref):
            candidates.append(ref)
        return next((sha for sha in self._peel_many(candidates) if sha), None)

    def ref_value(self, ref: str) -> str | None:
        """Return what a full ref holds in the mirror (a tag object for annotated tags), or None.

        This is the value a compare-and-swap (`set_ref`, `delete_ref`) expects.
        """
        return self._ref_value(self._full_ref(ref))

    def branches(self) -> list[str]:
        """Return the branch names in the mirror, sorted."""
        out = self._text("for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/")
        return sorted(out.splitlines())

    def tags(self) -> dict[str, str]:
        """Return tag name → commit sha (annotated tags peeled)."""
        out = self._run(
            "for-each-ref",
            "--format=%(refname:lstrip=2)%09%(objectname)%09%(*objectname)",
            "refs/tags/",
        )[1].decode("utf-8")
        tags = {}
        for line in out.splitlines():
            name, sha, peeled = line.split("\t")
            tags[name] = peeled or sha
        return tags

    def tree_of(self, ref: str) -> str:
        """Return the tree sha of a commit, branch or tag."""
        return self._text("rev-parse", "--verify", f"{self._commit_of(ref)}^{{tree}}")

    def list_files(self, ref: str, prefix: str | None = None) -> dict[str, str]:
        """Return path → blob sha of every file at `ref` (only under folder `prefix` if given).

        Raises:
            UnknownRef: when `ref` does not resolve.
        """
        args = ["ls-tree", "-r", "-z", "--full-tree", self._commit_of(ref)]
        if prefix:
            args += ["--", prefix.rstrip("/") + "/"]
        files = {}
        for record in self._run(*args)[1].split(b"\0"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            _, kind, sha = meta.decode().split(" ")
            if kind == "blob":
                files[path.decode("utf-8")] = sha
        return files

    def read_files(self, ref: str, paths: list[str] | None = None) -> dict[str, bytes]:
        """Return path → content for `paths` at `ref` (every file when None); missing are left out.

        One `cat-file --batch` reads them all; with `paths` given the tree is not listed, so
        the cost follows the number of paths.

        Raises:
            UnknownRef: when `ref` does not resolve.
        """
        commit = self._commit_of(ref)
        if paths is None:
            listing = self.list_files(commit)
            names, objects = list(listing), list(listing.values())
        else:
            names = [p for p in dict.fromkeys(paths) if p and not any(c in p for c in "\n\r\0")]
            objects = [f"{commit}:{p}" for p in names]
        found = self._cat_batch(objects)
        return {n: r[1] for n, r in zip(names, found, strict=True) if r and r[0] == "blob"}

    def diff(self, from_ref: str | None, to_ref: str) -> tuple[list[str], list[str], list[str]]:
        """Return (modified, added, deleted) paths from `from_ref` to `to_ref`, each sorted.

        `from_ref` None means an empty tree: everything at `to_ref` is added. A tree diff skips
        identical subtrees, so the cost follows the changes, not the size of the tree.

        Raises:
            UnknownRef: when a ref does not resolve.
        """
        to = self._commit_of(to_ref)
        if from_ref is None:
            return [], sorted(self.list_files(to)), []
        base = self._commit_of(from_ref)
        out = self._run("diff-tree", "-r", "-z", "--no-renames", base, to)[1]
        modified: list[str] = []
        added: list[str] = []
        deleted: list[str] = []
        tokens = out.split(b"\0")
        for meta, path in zip(tokens[::2], tokens[1::2], strict=False):
            status = meta.decode().rsplit(" ", 1)[-1][:1]
            name = path.decode("utf-8")
            {"A": added, "D": deleted}.get(status, modified).append(name)
        return sorted(modified), sorted(added), sorted(deleted)

    def log(
        self,
        ref: str,
        path: str | None = None,
        since: str | None = None,
        *,
        exclude: str | None = None,
        max_count: int | None = None,
    ) -> list[dict[str, str]]:
        """Return the commits reachable from `ref`, newest first, for audit trails.

        Args:
            ref: branch, tag or commit (unknown: an empty list).
            path: only commits touching this path.
            since: only commits after this date (anything `git log --since` accepts).
            exclude: leave out commits reachable from this ref (`exclude..ref`).
            max_count: at most this many commits.

        Returns:
            Dicts with `commit`, `author` ("name <email>"), `date` (ISO 8601) and `message`.
        """
        head = self.resolve(ref)
        if head is None:
            return []
        args = ["log", "-z", "--format=%H%x1f%an <%ae>%x1f%aI%x1f%B", head]
        if exclude is not None and (base := self.resolve(exclude)):
            args.append(f"^{base}")
        if since:
            args.append(f"--since={since}")
        if max_count is not None:
            args.append(f"--max-count={max_count}")
        if path:
            args += ["--", path]
        commits = []
        for record in self._run(*args)[1].decode("utf-8", "replace").split("\0"):
            if record.strip():
                sha, author, date, message = record.lstrip("\n").split("\x1f", 3)
                commits.append(
                    {"commit": sha, "author": author, "date": date, "message": message.strip()}
                )
        return commits

    def path_types(self, ref: str, paths: list[str]) -> dict[str, str]:
        """Return path → object type ("blob", "tree") for those of `paths` present at `ref`."""
        commit = self._commit_of(ref)
        names = [p for p in dict.fromkeys(paths) if p and not any(c in p for c in "\n\r\0")]
        if not names:
            return {}
        out = self._run(
            "cat-file",
            "--batch-check=%(objecttype)",
            stdin="".join(f"{commit}:{p}\n" for p in names).encode(),
        )[1].decode("utf-8", "replace")
        found = {}
        for path, line in zip(names, out.splitlines(), strict=True):
            if not line.endswith((" missing", " ambiguous")):
                found[path] = line.strip()
        return found

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Tell whether commit `ancestor` is reachable from `descendant`."""
        status = self._run("merge-base", "--is-ancestor", ancestor, descendant, check=False)[0]
        return status == 0

    def parents(self, ref: str) -> list[str]:
        """Return the parent commits of a commit."""
        out = self._text("rev-list", "--parents", "-n", "1", self._commit_of(ref))
        return out.split()[1:]

    # ------------------------------------------------------------------------------ writes

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
        ref = self._full_ref(f"refs/heads/{branch}")
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
        ref = self._full_ref(ref)
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
        ref = self._full_ref(ref)
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
