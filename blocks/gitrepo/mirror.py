"""The local bare mirror of a git remote: where it lives, its lock, and how git is run in it.

Several processes may share one cache folder: the mirror is built aside and renamed into place,
and guarded by an `flock` on `<mirror>.lock` while it is fetched into or written to. Every git
process gets a fixed identity and no credential prompt, and no message names a URL's
credentials.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import git

from blocks.gitrepo.errors import GitError, RemoteTimeout, RemoteUnavailable
from changeflow.change_notes import DEFAULT_AUTHOR
from changeflow.redaction import redact

__all__ = [
    "COMMITTER",
    "DEFAULT_AUTHOR",
    "NETWORK_TIMEOUT",
    "GitMirror",
    "default_cache_dir",
    "git_failure",
    "redact",
]

COMMITTER = ("changeflow", "changeflow@localhost")
# A mirror's lock is held at most once per thread (the flock is per open file, so a second
# acquisition in the same thread would wait on itself).
_held = threading.local()
# A remote that stops answering is given up on: over HTTP(S) by git itself (a transfer under
# 1 byte/s for 30 s ends), over any transport by killing git after NETWORK_TIMEOUT seconds.
_NETWORK_CONFIG = ("-c", "http.lowSpeedLimit=1", "-c", "http.lowSpeedTime=30")
NETWORK_TIMEOUT = 120.0
_TIMED_OUT = ("Operation too slow", "timed out", "Timeout:")
_UNREACHABLE = (
    "Could not resolve host",
    "Failed to connect",
    "Connection refused",
    "Couldn't connect",
    "Connection reset",
    "Empty reply from server",
    "early EOF",
    "Could not read from remote repository",
)


def git_failure(command: str, status: int, err: str) -> GitError:
    """The error for a failed git command, without URL credentials; a remote that could not be
    reached is `RemoteUnavailable` (said on one line), one that stopped answering
    `RemoteTimeout`."""
    kind: type[RemoteUnavailable] | None = None
    if any(m in err for m in _TIMED_OUT):
        kind = RemoteTimeout
    elif any(m in err for m in _UNREACHABLE):
        kind = RemoteUnavailable
    if kind is None:
        return GitError(redact(f"git {command} failed ({status}): {err.strip()}"))
    said = "; ".join(line.strip() for line in err.splitlines() if line.strip())
    return kind(redact(f"git {command}: the remote is unreachable ({status}): {said}"))


def default_cache_dir() -> Path:
    """Return `$CHANGEFLOW_HOME/repos` (CHANGEFLOW_HOME defaults to `~/.changeflow`)."""
    home = os.environ.get("CHANGEFLOW_HOME") or "~/.changeflow"
    return Path(home).expanduser() / "repos"


class GitMirror:
    """A bare mirror of one remote in a cache folder, and the git processes run in it.

    Args:
        url: the remote's git URL (any URL git understands; credentials in it are never
            printed).
        cache_dir: folder holding the mirror `<sha256(url)[:16]>.git` and its lock file.
        timeout: seconds after which a fetch or push is killed.
    """

    def __init__(
        self, url: str, cache_dir: Path | str, *, timeout: float = NETWORK_TIMEOUT
    ) -> None:
        self.url = url
        self.cache_dir = Path(cache_dir).expanduser()
        self.timeout = timeout
        name = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        self.path = self.cache_dir / f"{name}.git"
        self._lock_path = self.cache_dir / f"{name}.git.lock"
        self._env = self._environment()
        self._init_mirror()
        self._repo = git.Repo(self.path)
        self._repo.git.update_environment(**self._env)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(self.url)!r}, {str(self.cache_dir)!r})"

    def _environment(self) -> dict[str, str]:
        # No credential prompt may block a flow run waiting for a human who is not there, and
        # a fixed identity lets commits work on a machine with no git config.
        return {
            "GIT_DIR": str(self.path),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": COMMITTER[0],
            "GIT_AUTHOR_EMAIL": COMMITTER[1],
            "GIT_COMMITTER_NAME": COMMITTER[0],
            "GIT_COMMITTER_EMAIL": COMMITTER[1],
        }

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
            istream: BinaryIO | None = None
            if stdin is not None:
                # GitPython hands istream to Popen as stdin, which needs a real file.
                istream = stack.enter_context(tempfile.TemporaryFile())
                istream.write(stdin)
                istream.seek(0)
            status, out, err = self._repo.git.execute(
                ["git", *(_NETWORK_CONFIG if network else ()), *args],
                istream=istream,
                with_extended_output=True,
                with_exceptions=False,
                stdout_as_string=False,
                strip_newline_in_stdout=False,
                env=env,
                kill_after_timeout=self.timeout if network else None,
            )
        if check and status != 0:
            raise git_failure(args[0], status, err)
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
            _private(self.path / "config")  # a mirror made by a version that left it 0644
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
                # The config holds the URL, which may hold a token: owner-only before it is
                # written (git keeps a config's mode when it rewrites it; the folder is 0700).
                os.chmod(tmp / "config", 0o600)
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

    def _fetch(self, only: str | None = None) -> None:
        # A fetch that finds nothing new still checks that every remote tip is connected,
        # walking every tree in the inventory: its cost grows with the inventory. Listing the
        # remote refs and comparing them with the mirror's is cheap and usually ends here.
        # `only` (a full branch ref) fetches that branch alone: a writer of one branch among
        # many does not fetch what the others wrote.
        listed = self._run(
            "ls-remote",
            "--refs",
            *(["origin", only] if only else ["--heads", "--tags", "origin"]),
            network=True,
        )[1]
        remote = sorted(line for line in listed.decode("utf-8", "replace").splitlines()
                        if not only or line.endswith(f"\t{only}"))  # fmt: skip
        local = self._run(
            "for-each-ref",
            "--format=%(objectname)%09%(refname)",
            *([only] if only else ["refs/heads/", "refs/tags/"]),
        )[1]
        if remote == sorted(local.decode("utf-8", "replace").splitlines()):
            return
        if only and not remote:
            return  # the branch does not exist (yet): nothing to fetch or prune
        everything = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        refspecs = [f"+{only}:{only}"] if only else everything
        self._run(
            "fetch",
            "--quiet",
            *([] if only else ["--prune"]),
            "--force",
            "--no-tags",
            "--update-head-ok",
            "--no-write-fetch-head",
            "origin",
            *refspecs,
            network=True,
        )

    def fetch(self, only: str | None = None) -> None:
        """Bring the mirror up to date with the remote (every branch and tag; prunes too), or
        only the branch `only` (a full ref)."""
        with self._locked():
            self._fetch(only)


def _private(path: Path) -> None:
    """Make a file owner-only unless it already is."""
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
