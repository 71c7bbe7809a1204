"""Benchmark the git inventory: adding entries and reading deltas as the inventory grows.

Inventories of 100, 10,000 and 100,000 entries are built with one `git fast-import` each, in a
temporary folder, with names `team-<n % 100>/app-<n>` (entries grouped in folders, as real
inventories are). Each case is then timed through `GitInventory`, and the 100,000-entry case also
through a raw git plumbing baseline (hash-object, ls-tree, mktree, commit-tree, push into its own
copy of the remote, whose head it knows without asking: the least any plumbing commit of one file
does) measured in the same run, interleaved with the other cases, so the ratios hold anywhere.

    uv run python bench/inventory.py [--json] [--repeat N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from changeflow.models import InventoryEntry

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
SIZES = (100, 10_000, 100_000)
FOLDERS = 100
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_TERMINAL_PROMPT": "0",
}


def _name(n: int) -> str:
    return f"team-{n % FOLDERS}/app-{n}"


def _entry(n: int, version: str = "1.0.0") -> InventoryEntry:
    from changeflow.models import InventoryEntry

    digest = hashlib.sha256(f"{n}@{version}".encode()).hexdigest()
    return InventoryEntry(
        name=_name(n),
        artifact=f"s3://artifacts/raw/attachments/{digest[:2]}/{digest}/content",
        version=version,
        type="python-wheel",
        sha256=f"sha256:{digest}",
        repository_url=f"https://git.example/org/app-{n}",
        commit_sha=hashlib.sha1(f"{n}@{version}".encode()).hexdigest(),
        build_number=version,
        pipeline_run_id=f"ci-{n}-{version}",
        provenance=f"artifact://app-{n}@sha256:{digest}",
    )


def _git(*args: str, git_dir: Path, stdin: bytes | None = None) -> bytes:
    env = {**os.environ, **_GIT_ENV, "GIT_DIR": str(git_dir)}
    done = subprocess.run(["git", *args], input=stdin, env=env, capture_output=True, check=True)
    return done.stdout


def build_remote(path: Path, count: int) -> None:
    """Make a bare remote whose `master` holds `count` entries, with one `git fast-import`."""
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch=master", str(path)], check=True
    )
    chunks = [b"commit refs/heads/master\n", b"committer bench <bench@localhost> 0 +0000\n"]
    chunks.append(b"data 5\nbuild\n")
    for n in range(count):
        data = _entry(n).to_json() + b"\n"
        chunks.append(f"M 100644 inline {_name(n)}\ndata {len(data)}\n".encode() + data + b"\n")
    _git("fast-import", "--quiet", git_dir=path, stdin=b"".join(chunks))


def _ms(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


class RawGit:
    """The raw baseline: a single-file plumbing commit pushed to the remote, and nothing else.

    It is the remote's only writer here, so it knows the head without asking: no fetch, no ref
    listing, no checks. That is the floor any plumbing commit of one file stands on.
    """

    def __init__(self, remote: Path, mirror: Path) -> None:
        subprocess.run(
            ["git", "clone", "--quiet", "--bare", remote.as_uri(), str(mirror)], check=True
        )
        self.dir = mirror
        self.head = _git("rev-parse", "refs/heads/master", git_dir=mirror).decode().strip()

    def add(self, name: str, data: bytes) -> None:
        g, head = self.dir, self.head
        blob = _git("hash-object", "-w", "--stdin", git_dir=g, stdin=data).decode().strip()
        folder, leaf = name.split("/")
        root = _git("ls-tree", "-z", head, git_dir=g)
        sub = _git("ls-tree", "-z", f"{head}:{folder}", git_dir=g)
        sub += f"100644 blob {blob}\t{leaf}\0".encode()
        sub_tree = _git("mktree", "-z", git_dir=g, stdin=sub).decode().strip()
        lines = [r for r in root.split(b"\0") if r and not r.endswith(b"\t" + folder.encode())]
        lines.append(f"040000 tree {sub_tree}\t{folder}".encode())
        tree = _git("mktree", "-z", git_dir=g, stdin=b"\0".join(lines) + b"\0").decode().strip()
        commit = _git("commit-tree", tree, "-p", head, "-m", f"add {name}", git_dir=g)
        self.head = commit.decode().strip()
        _git("push", "--quiet", "origin", f"{self.head}:refs/heads/master", git_dir=g)


def _key(size: int) -> str:
    return f"add_ms_{size // 1000}k" if size >= 1000 else f"add_ms_{size}"


def run(repeat: int) -> dict[str, float]:
    """Run every case and return the results (milliseconds, seconds for the batch).

    The single-entry adds of every size and the raw baseline are timed in interleaved rounds,
    so load from other processes on the machine falls on all of them alike.
    """
    from blocks.inventory import GitInventory

    biggest = max(SIZES)
    counter = iter(range(biggest, biggest * 10))
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-") as tmp:
        base = Path(tmp)
        inventories: dict[int, GitInventory] = {}
        for size in SIZES:
            remote = base / f"inv-{size}.git"
            build_remote(remote, size)
            inventories[size] = GitInventory(
                remote_url=remote.as_uri(), cache_dir=str(base / "cache")
            )
            inventories[size].resolve("master")  # the first fetch fills the mirror: not timed
        # The baseline writes to its own copies of the smallest and biggest remotes, so it is
        # their only writer; measured at both ends, it shows how git itself scales.
        raws = {}
        for size in (min(SIZES), biggest):
            shutil.copytree(base / f"inv-{size}.git", base / f"raw-{size}.git")
            raws[size] = RawGit(base / f"raw-{size}.git", base / f"raw-mirror-{size}.git")

        def adder(inventory: GitInventory) -> Callable[[], object]:
            return lambda: inventory.add_entries([_entry(next(counter))])

        def raw_adder(raw: RawGit) -> Callable[[], object]:
            def add() -> None:
                n = next(counter)
                raw.add(_name(n), _entry(n).to_json() + b"\n")

            return add

        cases = {_key(size): adder(inv) for size, inv in inventories.items()}
        cases["raw_git_ms_100"] = raw_adder(raws[min(SIZES)])
        cases["raw_git_ms_100k"] = raw_adder(raws[biggest])
        times: dict[str, list[float]] = {key: [] for key in cases}
        for round_ in range(repeat + 1):
            for key, action in cases.items():
                took = _ms(action)
                if round_:  # round 0 warms up (page cache, imports)
                    times[key].append(took)
        results = {key: statistics.median(values) for key, values in times.items()}
        inventory = inventories[biggest]
        batch = [_entry(next(counter)) for _ in range(1000)]
        results["batch_1000_s"] = _ms(lambda: inventory.add_entries(batch)) / 1000
        before = inventory.resolve("master")
        assert before is not None
        inventory.move_labels(["bench_latest"], before)
        inventory.add_entries([_entry(n, "2.0.0") for n in range(0, biggest, biggest // 100)])

        def delta() -> None:
            found = inventory.delta("bench_latest", "master")
            assert len(found.changed) == 100, found.changed

        delta()
        results["delta_ms_100k"] = statistics.median(_ms(delta) for _ in range(repeat))
    results["add_ratio_100k_vs_100"] = results["add_ms_100k"] / results["add_ms_100"]
    results["add_ratio_vs_git"] = results["add_ms_100k"] / results["raw_git_ms_100k"]
    results["raw_git_ratio_100k_vs_100"] = results["raw_git_ms_100k"] / results["raw_git_ms_100"]
    return {k: round(v, 3) for k, v in results.items()}


def table(results: dict[str, float]) -> str:
    """Render the results as a markdown table."""
    rows = [
        ("add 1 entry, 100 entries (ms)", results["add_ms_100"], ""),
        ("add 1 entry, 10,000 entries (ms)", results["add_ms_10k"], ""),
        ("add 1 entry, 100,000 entries (ms)", results["add_ms_100k"], ""),
        ("raw git plumbing commit, 100 entries (ms)", results["raw_git_ms_100"], ""),
        ("raw git plumbing commit, 100,000 entries (ms)", results["raw_git_ms_100k"], ""),
        ("ratio 100k / 100", results["add_ratio_100k_vs_100"], "<= 1.5"),
        ("raw git's own ratio 100k / 100", results["raw_git_ratio_100k_vs_100"], ""),
        ("ratio 100k / raw git", results["add_ratio_vs_git"], "<= 2"),
        ("1,000 entries in one commit, 100k inventory (s)", results["batch_1000_s"], ""),
        ("delta, 100 changes in 100,000 entries (ms)", results["delta_ms_100k"], "< 100"),
    ]
    lines = [
        f"entries named team-<n % {FOLDERS}>/app-<n>; medians of interleaved rounds; git "
        + subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1],
        "",
        "| case | value | target |",
        "| --- | ---: | --- |",
    ]
    lines += [f"| {name} | {value:.3g} | {target} |" for name, value, target in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table, or one JSON object with `--json`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per case (median)")
    args = parser.parse_args(argv)
    # Prefect (imported by the block) must not touch the user's own Prefect home.
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="changeflow-bench-prefect-"))
    sys.path.insert(0, str(ROOT))
    results = run(max(1, args.repeat))
    print(json.dumps(results, sort_keys=True) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
