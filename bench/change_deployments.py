"""Benchmark the earlier deployments of one artifact, read through the index by digest.

The read behind the promotion gate and a CR's test deployments (`tasks.history.
deployment_history`: `ChangeManagement.deployments` through the git repo's index by artifact
digest, `blocks/change_index.py`, then the acceptance results), with 10 and with 10,000 CRs
filed, beside its floor: the same git processes run by hand. `bench/change.py` runs it and
prints its numbers with the others (issue 15: target a ratio of at most 1.5).

    uv run python bench/change.py [--json] [--repeat N]
"""

from __future__ import annotations

import hashlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from change_floors import fill_shards, raw_read, time_of  # noqa: E402

from blocks.change_index import artifact_entries, artifact_folder  # noqa: E402
from blocks.change_layout import change_paths, files_of, shard_branch  # noqa: E402
from blocks.change_management import GitChangeManagement  # noqa: E402
from changeflow.change_ids import format_change_id  # noqa: E402
from changeflow.models import ChangeRequest, ChangeState, CloseCategory  # noqa: E402

__all__ = ["earlier_deployments", "print_earlier_deployments"]


def _filled_index(base: Path, n: int) -> tuple[GitChangeManagement, str]:
    """A remote holding `n` closed CRs, with the files filing writes (`files_of` and the index
    by digest, `blocks.change_index`), built by one `git fast-import`: the 10 highest ids
    deployed one artifact (`app` at the digest returned) to 10 regions of staging and prod,
    every other one three artifacts of its own to one of 19 other environments."""

    def sha(label: str) -> str:
        return "sha256:" + hashlib.sha256(label.encode()).hexdigest()

    wanted = sha("app")
    remote = base / f"deployments-{n}.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
    shards: dict[str, list[bytes]] = {}
    for i in range(1, n + 1):
        change_id, recent = format_change_id(i), i > n - 10
        bom = {"app": wanted} if recent else {f"app-{i}-{k}": sha(f"{i}-{k}") for k in range(3)}
        cr = ChangeRequest(
            id=change_id,
            environment=("staging" if i % 2 else "prod") if recent else f"env-{i % 19}",
            region=f"r{i % 10}",
            deployment_run_id=f"deploy-{i}",
            state=ChangeState.closed,
            close_category=CloseCategory.successful,
            bom=bom,
            delta=sorted(bom),
        )
        for path, data in {**files_of(cr), **artifact_entries(cr)}.items():
            if isinstance(data, bytes):
                shards.setdefault(shard_branch(change_id), []).append(
                    b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data)
                )
    fill_shards(remote, shards)
    block = GitChangeManagement(remote_url=remote.as_uri(), cache_dir=str(base / f"d{n}"))
    block.deployments([wanted])  # warm: the mirror holds the history, as in a long-lived worker
    return block, wanted


def _raw_read(block: GitChangeManagement, wanted: str) -> Callable[[], None]:
    """The floor of one read: the git processes it runs, by hand on the same mirror
    (`raw_read`): the digest's folder on every shard, then the records it names."""
    heads = block.git.refs("refs/heads/changes/")
    folders = [f"{head}:{artifact_folder(wanted)}" for head in heads.values()]
    records = [
        f"{heads[f'refs/heads/{shard_branch(cr.id)}']}:{change_paths(cr.id)[0]}"
        for cr in block.deployments([wanted])
    ]
    return raw_read(block.git.path, folders, records)


def earlier_deployments(
    repeat: int, sizes: tuple[tuple[int, str], ...] = ((10, "10"), (10_000, "10k"))
) -> dict[str, float]:
    """The read behind the gate and a CR's earlier deployments, for one artifact:
    `tasks.history.deployment_history` (the CRs that deployed its sha256, through the index,
    and their acceptance results) with 10 and with 10,000 CRs filed (the same 10 deployed it),
    beside its floor (`_raw_read`). A read takes a few tens of milliseconds: every case is
    timed in turns, 10 x `repeat` times, so a load that comes and goes weighs on all alike.
    Also, once, what the read cost before the index: every CR (`list()`)."""
    from blocks.memory import MemoryEvidenceStore
    from changeflow.gate import deployments_of
    from tasks.history import deployment_history

    locker = MemoryEvidenceStore()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-deployments-") as tmp:
        reads: dict[str, Callable[[], object]] = {}
        for n, name in sizes:
            block, wanted = _filled_index(Path(tmp), n)

            def read(block: GitChangeManagement = block, wanted: str = wanted) -> int:
                crs, results = deployment_history.fn(block, locker, {"app": wanted})
                return len(deployments_of(crs, {"app": wanted}, results))

            if read() != 10:
                raise RuntimeError(f"expected the 10 deployments of app among {n} CRs")
            reads[f"earlier_deployments_s_{name}"] = read
            reads[f"earlier_deployments_raw_s_{name}"] = _raw_read(block, wanted)
            out[f"every_cr_s_{name}"] = time_of(block.list)
        times: dict[str, list[float]] = {key: [] for key in reads}
        for _ in range(10 * repeat):
            for key, run_once in reads.items():
                times[key].append(time_of(run_once))
    out.update({key: statistics.median(taken) for key, taken in times.items()})
    small, large = sizes[0][1], sizes[-1][1]
    for key in ("earlier_deployments", "earlier_deployments_raw"):
        out[f"{key}_ratio"] = out[f"{key}_s_{large}"] / out[f"{key}_s_{small}"]
    out["earlier_deployments_ratio_target"] = 1.5
    return out


def print_earlier_deployments(result: dict[str, float]) -> None:
    """The human lines of `earlier_deployments`."""
    print(
        f"earlier deployments of 1 artifact: with 10 CRs filed "
        f"{result['earlier_deployments_s_10']:.3f} s, with 10,000 "
        f"{result['earlier_deployments_s_10k']:.3f} s: ratio "
        f"{result['earlier_deployments_ratio']:.2f} (target 1.5; its git processes alone "
        f"{result['earlier_deployments_raw_s_10']:.3f} / "
        f"{result['earlier_deployments_raw_s_10k']:.3f} s, ratio "
        f"{result['earlier_deployments_raw_ratio']:.2f}); reading every CR, as before the "
        f"index: {result['every_cr_s_10k']:.3f} s"
    )
