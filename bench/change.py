"""Benchmark filing change requests in the git change-management repo.

`cr_s_200` files one CR for a delta of 200 entries (an evidence summary of 800 items, four
evidence types per entry): `draft_change_request`, `GitChangeManagement.create` (id allocation,
the record and its rendered Markdown, one commit pushed with a compare-and-swap) and rendering.
`cr_concurrent_20_s` files 20 such CRs at once from 20 threads into one bare remote (each its own
mirror, as separate deploy runs would be). The raw baseline is a plain plumbing commit of the
same two files (hash-object, mktree, commit-tree, push) into a bare remote, measured in the same
run, so the ratios hold on any machine; the concurrent case is compared with 20 raw commits in a
row. Beside it, the floors measured in the same run: `raw_concurrent_20_s`, 20 raw commits at
once (each writer its own mirror and branch: what 20 pushes at once cost here, with no id, no
index and no main), `draft_render_20_s`, drafting and rendering 20 CRs (Python work the raw
baseline does not do), and the CPU seconds (process and git processes) of the concurrent case
and of the 20 raw commits (`*_cpu_s`, their ratio `cr_concurrent_cpu_ratio`), which a machine's
load does not change as it changes wall times; `git_processes_per_cr`, the git processes
filing one CR runs. The history cases time what a deploy and `cr list -e prod` read with 10
and 10,000 CRs filed, each beside its floor (the same git processes by hand, `raw_read`).

    uv run python bench/change.py [--json] [--repeat N] [--cases filing,history,deployments]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blocks.change_layout import files_of  # noqa: E402
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

sys.path.insert(0, str(ROOT / "bench"))
from change_deployments import earlier_deployments, print_earlier_deployments  # noqa: E402
from change_floors import (  # noqa: E402
    CONCURRENT,
    at_once,
    bare,
    cpu_s,
    fill_shards,
    processes_of,
    raw_commit,
    raw_concurrent,
    raw_read,
    raw_two_pushes,
    time_of,
    timed,
)

__all__ = ["main"]

ENTRIES = 200
TYPES = ("com.ibm.unit_tests", "com.ibm.static_scan", "com.ibm.detect_secrets", "com.ibm.sbom")
TARGET_S = 2.0
CASES = ("filing", "history", "deployments")


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


def _drafted(n: int, facts: dict[str, Any]) -> None:
    """The Python work of filing one CR beside git's: draft, its files, rendering."""
    cr = draft_change_request(format_change_id(n), **facts)
    files_of(cr)
    render_change_request(cr)


def _file_one(block: GitChangeManagement, facts: dict[str, Any]) -> None:
    cr = block.create(partial(draft_change_request, **facts), "filed by the deploy flow")
    render_change_request(cr)


def _concurrent(base: Path, facts: dict[str, Any]) -> tuple[float, float]:
    """File CONCURRENT CRs from as many threads into one bare remote; return the wall time and
    the CPU time (this process and git's)."""
    shared = bare(base / "concurrent.git")
    blocks = [
        GitChangeManagement(remote_url=shared.as_uri(), cache_dir=str(base / f"w{i}"))
        for i in range(CONCURRENT)
    ]
    for b in blocks:
        b.git  # noqa: B018 (each worker's mirror exists before the race, as in a worker)
    cpu = cpu_s()
    took = at_once([partial(_file_one, b, facts) for b in blocks])
    cpu = cpu_s() - cpu
    ids = [cr.id for cr in blocks[0].list()]
    if len(set(ids)) != CONCURRENT:
        raise RuntimeError(f"expected {CONCURRENT} distinct CRs, found {ids}")
    return took, cpu


def _once(facts: dict[str, Any], files: dict[str, bytes]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-cr-") as tmp:
        base = Path(tmp)
        remote = bare(base / "changes.git")
        block = GitChangeManagement(remote_url=remote.as_uri(), cache_dir=str(base / "c"))
        _file_one(block, facts)  # warm: the mirror exists, as in a long-lived worker
        single = time_of(lambda: _file_one(block, facts))
        processes = processes_of(lambda: _file_one(block, facts))

        raw_remote, raw_local = bare(base / "raw.git"), bare(base / "raw-local.git")
        raw_commit(raw_local, raw_remote, files, 0)
        raw = time_of(lambda: raw_commit(raw_local, raw_remote, files, 1))

        def in_a_row() -> None:
            for n in range(2, 2 + CONCURRENT):
                raw_commit(raw_local, raw_remote, files, n)

        def drafting() -> None:
            for n in range(1, CONCURRENT + 1):
                _drafted(n, facts)

        raw20, raw20_cpu = timed(in_a_row)
        concurrent, concurrent_cpu = _concurrent(base, facts)
        drafts = time_of(drafting)
        return {
            "cr_s_200": single,
            "raw_commit_s": raw,
            "cr_concurrent_20_s": concurrent,
            "raw_commits_20_s": raw20,
            "raw_concurrent_20_s": raw_concurrent(base, files),
            "raw_two_pushes_20_s": raw_two_pushes(base, files),
            "draft_render_20_s": drafts,
            "cr_concurrent_20_cpu_s": concurrent_cpu,
            "raw_commits_20_cpu_s": raw20_cpu,
            "git_processes_per_cr": processes,
        }


def _filled(base: Path, sample: bytes, n: int) -> GitChangeManagement:
    """A remote holding `n` CRs already filed, in the layout `GitChangeManagement` writes
    (`blocks.change_layout`), built by one `git fast-import`: the 10 highest ids are filed for
    `prod`, every other one for one of 19 other environments (a year of 20 places)."""
    remote = bare(base / f"history-{n}.git")
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
    fill_shards(remote, shards)
    block = GitChangeManagement(remote_url=remote.as_uri(), cache_dir=str(base / f"h{n}"))
    block.list("prod")  # warm: the mirror holds the history, as in a long-lived worker
    return block


# what a deploy reads (the open CRs of its environment) and what `cr list -e prod` reads
_LISTINGS = (("deploy_list", "open", True), ("list", "environments", False))


def history(repeat: int) -> dict[str, float]:
    """What a deploy reads (the open CRs of its environment) and `cr list --environment prod`
    reads, with 10 and with 10,000 CRs filed (the same 10 in prod), each beside its floor: the
    same git processes run by hand on the same mirror (`raw_read`). A read takes a few tens of
    milliseconds: every case is timed in turns, 10 x `repeat` times, so a load that comes and
    goes weighs on all alike."""
    facts = _facts()
    sample = draft_change_request("CHG0000001", **facts).to_json()
    if b'"environment":"prod"' not in sample:
        raise RuntimeError("the sample CR is not filed for prod")
    reads: dict[str, Callable[[], object]] = {}
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-history-") as tmp:
        for n, name in ((10, "10"), (10_000, "10k")):
            block = _filled(Path(tmp), sample, n)
            for key, folder, open_only in _LISTINGS:
                read = partial(block.list, "prod", open_only=open_only)
                if len(read()) != 10:
                    raise RuntimeError(f"expected the 10 CRs of prod among {n}")
                heads = block.git.refs("refs/heads/changes/").values()
                trees = [f"{head}:{folder}/prod" for head in heads]
                records = [e[2] for t in block.git.read_trees(trees) for e in (t or {}).values()]
                reads[f"{key}_s_{name}"] = read
                reads[f"{key}_raw_s_{name}"] = raw_read(block.git.path, trees, records)
        times: dict[str, list[float]] = {key: [] for key in reads}
        for _ in range(10 * repeat):
            for key, read_once in reads.items():
                times[key].append(time_of(read_once))
    out = {key: statistics.median(taken) for key, taken in times.items()}
    for key in ("deploy_list", "list"):
        out[f"{key}_ratio_10k_vs_10"] = out[f"{key}_s_10k"] / out[f"{key}_s_10"]
        out[f"{key}_raw_ratio_10k_vs_10"] = out[f"{key}_raw_s_10k"] / out[f"{key}_raw_s_10"]
        out[f"{key}_ratio_target"] = 1.5
    return out


def run(repeat: int) -> dict[str, float]:
    """Measure every filing case `repeat` times and return the medians (seconds, or counts)."""
    facts = _facts()
    sample = draft_change_request("CHG0000001", **facts)
    record, markdown = change_paths(sample.id)
    files = {record: sample.to_json() + b"\n", markdown: render_change_request(sample).encode()}
    runs = [_once(facts, files) for _ in range(repeat)]
    out = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    out["cr_ratio"] = out["cr_s_200"] / out["raw_commit_s"]
    out["cr_concurrent_ratio"] = out["cr_concurrent_20_s"] / out["raw_commits_20_s"]
    out["cr_concurrent_cpu_ratio"] = out["cr_concurrent_20_cpu_s"] / out["raw_commits_20_cpu_s"]
    out["cr_s_200_target"] = TARGET_S
    out["cr_concurrent_ratio_target"] = 2.0
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated cases to run, of {', '.join(CASES)} (default: all)",
    )
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if args.repeat < 1 or not cases or set(cases) - set(CASES):
        print(
            f"bench: --repeat must be at least 1, --cases among {','.join(CASES)}", file=sys.stderr
        )
        return 2
    result: dict[str, float] = {}
    if "filing" in cases:
        result.update(run(args.repeat))
    if "history" in cases:
        result.update(history(args.repeat))
    if "deployments" in cases:
        result.update(earlier_deployments(args.repeat))  # bench/change_deployments.py
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in result.items()}, sort_keys=True))
        return 0
    if "filing" in cases:
        _print_filing(result)
    if "history" in cases:
        for key, what in (("deploy_list", "deploy: open CRs of prod"), ("list", "cr list -e prod")):
            print(f"{what}: with 10 CRs filed {result[f'{key}_s_10']:.3f} s, with 10,000 "
                  f"{result[f'{key}_s_10k']:.3f} s: ratio {result[f'{key}_ratio_10k_vs_10']:.2f} "
                  f"(target 1.5; its git processes alone {result[f'{key}_raw_s_10']:.3f} / "
                  f"{result[f'{key}_raw_s_10k']:.3f} s, ratio "
                  f"{result[f'{key}_raw_ratio_10k_vs_10']:.2f})")  # fmt: skip
    if "deployments" in cases:
        print_earlier_deployments(result)
    return 0


def _print_filing(result: dict[str, float]) -> None:
    rows = [
        ("file 1 CR, 200 entries", result["cr_s_200"], result["raw_commit_s"], result["cr_ratio"]),
        (
            "file 20 CRs at once",
            result["cr_concurrent_20_s"],
            result["raw_commits_20_s"],
            result["cr_concurrent_ratio"],
        ),
        (
            "  CPU s of that",
            result["cr_concurrent_20_cpu_s"],
            result["raw_commits_20_cpu_s"],
            result["cr_concurrent_cpu_ratio"],
        ),
    ]
    print(f"{'case':<26} {'changeflow s':>12} {'raw git s':>10} {'ratio':>7}")
    for name, ours, base, ratio in rows:
        print(f"{name:<26} {ours:>12.3f} {base:>10.3f} {ratio:>7.1f}")
    print(
        f"floors: 20 raw commits at once (own branches) {result['raw_concurrent_20_s']:.3f} s, "
        f"with an id ticket pushed first {result['raw_two_pushes_20_s']:.3f} s; "
        f"drafting and rendering 20 CRs {result['draft_render_20_s']:.3f} s; "
        f"{result['git_processes_per_cr']:.0f} git processes per CR"
    )
    verdict = "meets" if result["cr_s_200"] < TARGET_S else "MISSES"
    print(f"cr_s_200 {verdict} its {TARGET_S:.0f} s target")


if __name__ == "__main__":
    sys.exit(main())
