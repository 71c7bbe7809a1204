"""Benchmark filing change requests in the git change-management repo.

`cr_s_200` files one CR for a delta of 200 entries (an evidence summary of 800 items, four
evidence types per entry): `draft_change_request`, `GitChangeManagement.create` (id allocation,
the record and its rendered Markdown, one commit pushed with a compare-and-swap) and rendering.
`cr_concurrent_20_s` files 20 such CRs at once from 20 threads into one bare remote (each its own
mirror, as separate deploy runs would be). The raw baseline is a plain plumbing commit of the
same two files (hash-object, mktree, commit-tree, push) into a bare remote, measured in the same
run, so the ratios hold on any machine; the concurrent case is compared with 20 raw commits in a
row.

    uv run python bench/change.py [--json] [--repeat N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blocks.change_management import (  # noqa: E402
    GitChangeManagement,
    change_paths,
    shard_branch,
)
from changeflow.change import draft_change_request  # noqa: E402
from changeflow.change_ids import format_change_id  # noqa: E402
from changeflow.delta import Delta  # noqa: E402
from changeflow.models import (  # noqa: E402
    Evidence,
    EvidenceDetails,
    EvidenceOrigin,
    EvidenceResult,
    InventoryEntry,
    Promotion,
    asset_id,
)
from changeflow.readiness import ReadinessPolicy, deployment_ready  # noqa: E402
from changeflow.render import render_change_request  # noqa: E402
from changeflow.summary import summarize  # noqa: E402

__all__ = ["main"]

ENTRIES = 200
CONCURRENT = 20
TYPES = ("com.ibm.unit_tests", "com.ibm.static_scan", "com.ibm.detect_secrets", "com.ibm.sbom")
TARGET_S = 2.0
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_TERMINAL_PROMPT": "0",
}


def _entry(n: int) -> InventoryEntry:
    digest = hashlib.sha256(f"{n}".encode()).hexdigest()
    return InventoryEntry(
        name=f"team-{n % 10}/app-{n}",
        artifact=f"s3://artifacts/raw/attachments/{digest[:2]}/{digest}/content",
        version="1.0.0",
        type="python-wheel",
        sha256=f"sha256:{digest}",
        repository_url=f"https://git.example/org/app-{n}",
        commit_sha=hashlib.sha1(f"{n}".encode()).hexdigest(),
        build_number="1",
        pipeline_run_id=f"ci-{n}",
        provenance=f"artifact://app-{n}@sha256:{digest}",
    )


def _facts() -> dict[str, Any]:
    """The inputs of one deployment of 200 entries: delta, summary, readiness, promotion."""
    entries = {e.name: e for e in (_entry(n) for n in range(ENTRIES))}
    delta = Delta(added=sorted(entries), entries=entries)
    assets = {asset_id(e.provenance): e.provenance for e in entries.values()}
    when = datetime(2026, 11, 1, tzinfo=UTC)
    records = [
        Evidence(
            date=when,
            evidence_type_id=kind,
            origin=EvidenceOrigin(scope="ci-1"),
            details=EvidenceDetails(
                result=EvidenceResult.failure if i % 50 == 0 else EvidenceResult.success,
                tool=kind.rsplit(".", 1)[-1],
            ),
            assets=[aid],
        ).sealed()
        for i, aid in enumerate(sorted(assets))
        for kind in TYPES
    ]
    summary = summarize(
        scope="deploy-1", environment="prod", region="us-south", assets=assets, records=records
    )
    readiness = deployment_ready(summary, ReadinessPolicy(), today=when.date())
    promotion = Promotion(
        id="p-1",
        source="staging",
        target="prod",
        assigned_to="release manager",
        description="weekly release",
        backout_plan="redeploy the previous tag",
    )
    return {
        "environment": "prod",
        "region": "us-south",
        "deployment_run_id": "deploy-1",
        "delta": delta,
        "previous": {},
        "inventory_commit": "a" * 40,
        "previous_inventory_commit": None,
        "promotion": promotion,
        "summary": summary,
        "summary_url": "s3://evidence/raw/cd/deploy-1/summary.json",
        "summary_sha256": "sha256:" + "b" * 64,
        "readiness": readiness,
        "emergency": False,
    }


def _bare(path: Path) -> Path:
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True)
    return path


def _git(git_dir: Path, *args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args],
        input=stdin,
        capture_output=True,
        check=True,
        env={**os.environ, **_GIT_ENV},
    ).stdout.decode()


def _raw_commit(local: Path, remote: Path, files: dict[str, bytes], n: int) -> None:
    """The least a plumbing commit of these files does: blobs, trees, commit, push."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, data in enumerate(files.values()):
            (Path(tmp) / str(i)).write_bytes(data)
            paths.append(str(Path(tmp) / str(i)))
        blobs = _git(local, "hash-object", "-w", "--stdin-paths", stdin="\n".join(paths).encode())
    names = [p.rsplit("/", 1)[1].replace(".json", f"-{n}.json").replace(".md", f"-{n}.md")
             for p in files]  # fmt: skip
    listing = "".join(
        f"100644 blob {sha}\t{name}\n" for sha, name in zip(blobs.split(), names, strict=True)
    )
    # The folder is rewritten whole: the cheapest possible tree, no listing of what is there.
    sub = _git(local, "mktree", stdin=listing.encode()).strip()
    root = _git(local, "mktree", stdin=f"040000 tree {sub}\tchanges\n".encode()).strip()
    parent = subprocess.run(
        ["git", "--git-dir", str(local), "rev-parse", "--verify", "--quiet", "refs/heads/main"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    args = ["commit-tree", root, *(["-p", parent] if parent else []), "-m", f"CHG {n}"]
    commit = _git(local, *args).strip()
    _git(local, "update-ref", "refs/heads/main", commit)
    _git(local, "push", "--quiet", str(remote), "refs/heads/main:refs/heads/main")


def _time(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _file_one(block: GitChangeManagement, facts: dict[str, Any]) -> None:
    cr = block.create(partial(draft_change_request, **facts), "filed by the deploy flow")
    render_change_request(cr)


def _concurrent(base: Path, facts: dict[str, Any]) -> float:
    """File CONCURRENT CRs from as many threads into one bare remote; return the wall time."""
    shared = _bare(base / "concurrent.git")
    blocks = [
        GitChangeManagement(remote_url=shared.as_uri(), cache_dir=str(base / f"w{i}"))
        for i in range(CONCURRENT)
    ]
    for b in blocks:
        b.git  # noqa: B018 (each worker's mirror exists before the race, as in a worker)
    start = threading.Barrier(CONCURRENT + 1)
    errors: list[BaseException] = []

    def worker(b: GitChangeManagement) -> None:
        start.wait()
        try:
            _file_one(b, facts)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(b,)) for b in blocks]
    for t in threads:
        t.start()
    started = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    if errors:
        raise errors[0]
    ids = [cr.id for cr in blocks[0].list()]
    if len(set(ids)) != CONCURRENT:
        raise RuntimeError(f"expected {CONCURRENT} distinct CRs, found {ids}")
    return took


def _once(facts: dict[str, Any], files: dict[str, bytes]) -> tuple[float, float, float, float]:
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-cr-") as tmp:
        base = Path(tmp)
        remote = _bare(base / "changes.git")
        block = GitChangeManagement(remote_url=remote.as_uri(), cache_dir=str(base / "c"))
        _file_one(block, facts)  # warm: the mirror exists, as in a long-lived worker
        single = _time(lambda: _file_one(block, facts))

        raw_remote, raw_local = _bare(base / "raw.git"), _bare(base / "raw-local.git")
        _raw_commit(raw_local, raw_remote, files, 0)
        raw = _time(lambda: _raw_commit(raw_local, raw_remote, files, 1))
        raw20 = _time(lambda: [_raw_commit(raw_local, raw_remote, files, n) for n in range(2, 22)])
        return single, raw, _concurrent(base, facts), raw20


def _filled(base: Path, sample: bytes, n: int) -> GitChangeManagement:
    """A remote holding `n` CRs already filed, in the layout `GitChangeManagement` writes
    (`blocks.change_layout`), built by one `git fast-import`: the 10 highest ids are filed for
    `prod`, every other one for one of 19 other environments (a year of 20 places)."""
    remote = _bare(base / f"history-{n}.git")
    shards: dict[str, list[bytes]] = {}
    for i in range(1, n + 1):
        change_id = format_change_id(i)
        environment = "prod" if i > n - 10 else f"env-{i % 19}"
        body = sample.replace(b"CHG0000001", change_id.encode()).replace(
            b'"environment":"prod"', f'"environment":"{environment}"'.encode()
        )
        for path in (f"changes/{change_id}.json", f"environments/{environment}/{change_id}.json",
                     f"open/{environment}/{change_id}.json"):  # fmt: skip
            shards.setdefault(shard_branch(change_id), []).append(
                b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(body), body)
            )
    stream = [
        b"commit refs/heads/%s\ncommitter bench <bench@localhost> 0 +0000\ndata 4\nfill\n%s"
        % (branch.encode(), b"".join(files))
        for branch, files in sorted(shards.items())
    ]
    subprocess.run(["git", "--git-dir", str(remote), "fast-import", "--quiet"],
                   input=b"".join(stream), check=True, env={**os.environ, **_GIT_ENV})  # fmt: skip
    block = GitChangeManagement(remote_url=remote.as_uri(), cache_dir=str(base / f"h{n}"))
    block.list("prod")  # warm: the mirror holds the history, as in a long-lived worker
    return block


def history(repeat: int) -> dict[str, float]:
    """What a deploy reads (the open CRs of its environment) and `cr list --environment prod`
    reads, with 10 and with 10,000 CRs filed (the same 10 in prod)."""
    facts = _facts()
    sample = draft_change_request("CHG0000001", **facts).to_json()
    if b'"environment":"prod"' not in sample:
        raise RuntimeError("the sample CR is not filed for prod")
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-history-") as tmp:
        out = {}
        for n, name in ((10, "10"), (10_000, "10k")):
            block = _filled(Path(tmp), sample, n)
            deploy = partial(block.list, "prod", open_only=True)
            listing = partial(block.list, "prod")
            if len(deploy()) != 10 or len(listing()) != 10:
                raise RuntimeError(f"expected the 10 CRs of prod among {n}")
            out[f"deploy_list_s_{name}"] = statistics.median(_time(deploy) for _ in range(repeat))
            out[f"list_s_{name}"] = statistics.median(_time(listing) for _ in range(repeat))
    out["deploy_list_ratio_10k_vs_10"] = out["deploy_list_s_10k"] / out["deploy_list_s_10"]
    out["list_ratio_10k_vs_10"] = out["list_s_10k"] / out["list_s_10"]
    out["deploy_list_ratio_target"] = 1.5
    out["list_ratio_target"] = 1.5
    return out


def run(repeat: int) -> dict[str, float]:
    """Measure every case `repeat` times and return the medians, in seconds."""
    facts = _facts()
    sample = draft_change_request("CHG0000001", **facts)
    record, markdown = change_paths(sample.id)
    files = {record: sample.to_json() + b"\n", markdown: render_change_request(sample).encode()}
    runs = [_once(facts, files) for _ in range(repeat)]
    single, raw, concurrent, raw20 = (list(column) for column in zip(*runs, strict=True))
    return {
        "cr_s_200": statistics.median(single),
        "raw_commit_s": statistics.median(raw),
        "cr_concurrent_20_s": statistics.median(concurrent),
        "raw_commits_20_s": statistics.median(raw20),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        print("bench: --repeat must be at least 1", file=sys.stderr)
        return 2
    result = run(args.repeat)
    result.update(history(args.repeat))
    result["cr_ratio"] = result["cr_s_200"] / result["raw_commit_s"]
    result["cr_concurrent_ratio"] = result["cr_concurrent_20_s"] / result["raw_commits_20_s"]
    result["cr_s_200_target"] = TARGET_S
    result["cr_concurrent_ratio_target"] = 2.0
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in result.items()}, sort_keys=True))
        return 0
    rows = [
        ("file 1 CR, 200 entries", result["cr_s_200"], result["raw_commit_s"], result["cr_ratio"]),
        (
            "file 20 CRs at once",
            result["cr_concurrent_20_s"],
            result["raw_commits_20_s"],
            result["cr_concurrent_ratio"],
        ),
    ]
    print(f"{'case':<26} {'changeflow s':>12} {'raw git s':>10} {'ratio':>7}")
    for name, ours, base, ratio in rows:
        print(f"{name:<26} {ours:>12.3f} {base:>10.3f} {ratio:>7.1f}")
    for key, what in (("deploy_list", "deploy: open CRs of prod"), ("list", "cr list -e prod")):
        print(f"{what}: with 10 CRs filed {result[f'{key}_s_10']:.3f} s, with 10,000 "
              f"{result[f'{key}_s_10k']:.3f} s: ratio {result[f'{key}_ratio_10k_vs_10']:.2f} "
              "(target 1.5)")  # fmt: skip
    verdict = "meets" if result["cr_s_200"] < TARGET_S else "MISSES"
    print(f"cr_s_200 {verdict} its {TARGET_S:.0f} s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
