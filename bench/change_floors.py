"""What `bench/change.py` measures its filing cases against: raw git, and the floors.

Raw git is plain plumbing run by hand (`raw_commit`); the floors are what 2 cores do with
writers at once (`raw_concurrent`, `raw_two_pushes`), measured in the same run as the cases.
"""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "CONCURRENT",
    "GIT_ENV",
    "at_once",
    "bare",
    "cpu_s",
    "fill_shards",
    "git",
    "processes_of",
    "raw_commit",
    "raw_concurrent",
    "raw_read",
    "raw_two_pushes",
    "time_of",
    "timed",
]

CONCURRENT = 20
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_TERMINAL_PROMPT": "0",
}


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True)
    return path


def git(git_dir: Path, *args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args],
        input=stdin,
        capture_output=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    ).stdout.decode()


def fill_shards(remote: Path, shards: dict[str, list[bytes]]) -> None:
    """Commit each branch's `M` lines (fast-import's inline files) to `remote`, one commit per
    branch, in one `git fast-import`: a history of any size, filled in seconds."""
    stream = [
        b"commit refs/heads/%s\ncommitter bench <bench@localhost> 0 +0000\ndata 4\nfill\n%s"
        % (branch.encode(), b"".join(files))
        for branch, files in sorted(shards.items())
    ]
    git(remote, "fast-import", "--quiet", stdin=b"".join(stream))


def raw_commit(
    local: Path, remote: Path, files: dict[str, bytes], n: int, branch: str = "main"
) -> None:
    """The least a plumbing commit of these files does: blobs, trees, commit, push."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, data in enumerate(files.values()):
            (Path(tmp) / str(i)).write_bytes(data)
            paths.append(str(Path(tmp) / str(i)))
        blobs = git(local, "hash-object", "-w", "--stdin-paths", stdin="\n".join(paths).encode())
    names = [p.rsplit("/", 1)[1].replace(".json", f"-{n}.json").replace(".md", f"-{n}.md")
             for p in files]  # fmt: skip
    listing = "".join(
        f"100644 blob {sha}\t{name}\n" for sha, name in zip(blobs.split(), names, strict=True)
    )
    # The folder is rewritten whole: the cheapest possible tree, no listing of what is there.
    sub = git(local, "mktree", stdin=listing.encode()).strip()
    root = git(local, "mktree", stdin=f"040000 tree {sub}\tchanges\n".encode()).strip()
    ref = f"refs/heads/{branch}"
    parent = subprocess.run(
        ["git", "--git-dir", str(local), "rev-parse", "--verify", "--quiet", ref],
        capture_output=True,
        text=True,
    ).stdout.strip()
    args = ["commit-tree", root, *(["-p", parent] if parent else []), "-m", f"CHG {n}"]
    commit = git(local, *args).strip()
    git(local, "update-ref", ref, commit)
    git(local, "push", "--quiet", str(remote), f"{ref}:{ref}")


def raw_read(git_dir: Path, trees: list[str], blobs: list[str]) -> Callable[[], None]:
    """The floor of a read through a mirror: the git processes it runs (the remote's refs
    listed, the mirror's twice, the `trees` in one batch, then the `blobs` they name), run by
    hand on the same mirror, with nothing parsed."""
    command = ["git", "--git-dir", str(git_dir)]
    refs = ["for-each-ref", "--format=%(objectname)%09%(refname)", "refs/heads/", "refs/tags/"]
    steps: list[tuple[list[str], bytes | None]] = [
        (["ls-remote", "--refs", "--heads", "--tags", "origin"], None),
        (refs, None),
        (refs, None),
        (["cat-file", "--batch"], "".join(f"{t}\n" for t in trees).encode()),
        (["cat-file", "--batch"], "".join(f"{b}\n" for b in blobs).encode()),
    ]

    def read() -> None:
        for args, stdin in steps:
            subprocess.run([*command, *args], input=stdin, capture_output=True, check=True)

    return read


def time_of(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def cpu_s() -> float:
    """CPU seconds of this process and of the processes it waited for (git's), so far."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `fn()`."""
    cpu = cpu_s()
    return time_of(fn), cpu_s() - cpu


def at_once(workers: list[Callable[[], object]]) -> float:
    """Run each callable in its own thread, released together; the wall time until all end."""
    start = threading.Barrier(len(workers) + 1)
    errors: list[BaseException] = []

    def run(work: Callable[[], object]) -> None:
        start.wait()
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    started = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    if errors:
        raise errors[0]
    return took


def raw_concurrent(base: Path, files: dict[str, bytes]) -> float:
    """CONCURRENT raw commits at once into one bare remote, each writer its own mirror and
    branch (no race): the floor of CONCURRENT pushes at once on this machine."""
    remote = bare(base / "raw-concurrent.git")
    mirrors = [bare(base / f"raw-w{i}.git") for i in range(CONCURRENT)]

    def writer(i: int) -> Callable[[], None]:
        return lambda: raw_commit(mirrors[i], remote, files, i, branch=f"w{i}")

    return at_once([writer(i) for i in range(CONCURRENT)])


def raw_two_pushes(base: Path, files: dict[str, bytes]) -> float:
    """CONCURRENT writers at once, each pushing a ref to a blob the remote holds (as a CR's id
    ticket) and then a raw commit on its own branch: the floor of any filing that takes its id
    before it writes (the id is in the record), each writer pushing its own content."""
    remote = bare(base / "raw-two.git")
    mirrors = [bare(base / f"raw-two-w{i}.git") for i in range(CONCURRENT)]
    blob = git(mirrors[0], "hash-object", "-w", "--stdin", stdin=b"pending\n").strip()
    git(mirrors[0], "push", "--quiet", str(remote), f"{blob}:refs/tickets/seed")

    def writer(i: int) -> Callable[[], None]:
        def run() -> None:
            git(mirrors[i], "hash-object", "-w", "--stdin", stdin=b"pending\n")
            git(mirrors[i], "push", "--quiet", str(remote), f"{blob}:refs/tickets/{i}")
            raw_commit(mirrors[i], remote, files, i, branch=f"w{i}")

        return run

    return at_once([writer(i) for i in range(CONCURRENT)])


def processes_of(work: Callable[[], object]) -> int:
    """The git processes `work` runs through the blocks' mirrors."""
    from blocks.gitrepo.mirror import GitMirror

    run = GitMirror._run
    count = [0]

    def counted(self: GitMirror, *args: str, **kwargs: Any) -> tuple[int, bytes, str]:
        count[0] += 1
        return run(self, *args, **kwargs)

    GitMirror._run = counted  # type: ignore[method-assign]
    try:
        work()
    finally:
        GitMirror._run = run  # type: ignore[method-assign]
    return count[0]
