"""The readers of an artifact's history read the CRs that deployed it, never every CR (issue 15).

The gate and a delta's earlier deployments (`tasks.history.deployment_history`), `trace`
(`read_trace`) and the audit of an environment (`tasks.audit.deployers`) go through
`ChangeManagement.deployments`; on in-memory stores that count every listing.
"""

from __future__ import annotations

import builtins
import hashlib
from datetime import date

from blocks.memory import MemoryChangeManagement, MemoryEvidenceStore, memory_stores
from changeflow.models import ChangeRequest, ChangeState, CloseCategory, InventoryEntry
from changeflow.ports import Stores
from tasks.audit import deployers
from tasks.history import deployment_history, read_trace

TODAY = date(2026, 11, 1)


class Counting(MemoryChangeManagement):
    """Change management in memory that records the environment of every listing."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: builtins.list[str | None] = []

    def list(
        self, environment: str | None = None, open_only: bool = False
    ) -> builtins.list[ChangeRequest]:
        self.listed.append(environment)
        return super().list(environment, open_only)


def _entry(version: str) -> InventoryEntry:
    hexa = hashlib.sha256(version.encode()).hexdigest()
    return InventoryEntry(
        name="app/bin", artifact=f"artifact://app@sha256:{hexa}", version=version, type="file",
        sha256=f"sha256:{hexa}", repository_url="https://git.example/org/app",
        commit_sha=hashlib.sha1(version.encode()).hexdigest(), build_number=version,
        pipeline_run_id=f"ci-{version}", provenance=f"artifact://app@sha256:{hexa}",
    )  # fmt: skip


def _file(
    changes: Counting, environment: str, region: str, commit: str, bom: dict[str, str]
) -> ChangeRequest:
    return changes.create(
        lambda i: ChangeRequest(
            id=i, environment=environment, region=region, deployment_run_id="d", bom=bom,
            state=ChangeState.closed, close_category=CloseCategory.successful,
            inventory_commit=commit,
        )
    )  # fmt: skip


def _history() -> tuple[Stores, Counting, dict[str, ChangeRequest]]:
    """v1 of app/bin deployed to staging and prod/r1, v2 since on every branch but deployed
    nowhere, prod/r2 last changed by a CR that only deleted entries, and 30 other CRs."""
    base = memory_stores()
    changes = Counting()
    stores = Stores(base.evidence, base.inventory, changes, base.incidents)
    inventory, v1 = stores.inventory, _entry("1")
    for branch in ("master", "staging", "prod"):
        inventory.add_entries([v1], branch)
    staging, prod = inventory.resolve("staging"), inventory.resolve("prod")
    assert staging is not None and prod is not None
    inventory.move_labels(["r1_prod_latest"], prod)
    inventory.move_labels(["r2_prod_latest"], prod)
    for n in range(30):
        _file(changes, "dev", "r1", "0" * 40, {f"other-{n}": _entry(f"x{n}").sha256})
    crs = {
        "staging": _file(changes, "staging", "r1", staging, {"app/bin": v1.sha256}),
        "prod": _file(changes, "prod", "r1", prod, {"app/bin": v1.sha256}),
        "deletion": _file(changes, "prod", "r2", prod, {}),
    }
    for branch in ("master", "staging", "prod"):
        inventory.add_entries([_entry("2")], branch)
    return stores, changes, crs


def test_the_gate_reads_the_crs_that_deployed_the_artifact() -> None:
    _, changes, crs = _history()
    found, _ = deployment_history.fn(
        changes, MemoryEvidenceStore(), {"app/bin": _entry("1").sha256}
    )
    assert found == [crs["staging"], crs["prod"]]
    assert changes.listed == []


def test_trace_reads_the_crs_that_deployed_the_artifact() -> None:
    stores, changes, crs = _history()
    by_cr = read_trace(stores, crs["prod"].id, today=TODAY)
    by_name = read_trace(stores, "app/bin", today=TODAY)
    assert changes.listed == []
    (traced,) = by_cr.artifacts
    assert [d.change_request for d in traced.deployments] == [crs["staging"].id, crs["prod"].id]
    assert [b.build_number for b in traced.builds] == ["1"]
    # by name: v2 on the branches, and v1, which only the deployed labels still hold
    traced_by_name = [
        (a.sha256, [b.build_number for b in a.builds], len(a.deployments))
        for a in by_name.artifacts
    ]
    assert traced_by_name == sorted(
        [(_entry("1").sha256, ["1"], 2), (_entry("2").sha256, ["2"], 0)]
    )


def test_an_artifact_uri_no_branch_holds_any_more_is_traced_through_its_deployments() -> None:
    stores, changes, crs = _history()
    v1 = _entry("1")
    traced = read_trace(stores, v1.provenance, branches=["staging", "prod"], today=TODAY)
    assert changes.listed == []
    (artifact,) = traced.artifacts
    assert (artifact.entry, artifact.sha256) == ("app/bin", v1.sha256)
    assert [d.change_request for d in artifact.deployments] == [crs["staging"].id, crs["prod"].id]
    assert [b.build_number for b in artifact.builds] == ["1"]
    # a uri of the same bytes under another name names nothing: the CR's entry must be it
    other = v1.provenance.replace("artifact://app@", "artifact://other@")
    assert read_trace(stores, other, today=TODAY).artifacts == []


def test_the_audit_reads_the_environments_crs_only_for_a_commit_none_deployed() -> None:
    stores, changes, crs = _history()
    prod = crs["prod"].inventory_commit
    assert prod is not None
    found = deployers(changes, stores.inventory, "prod", {"r1": prod})
    assert found == {"r1": crs["prod"]} and changes.listed == []
    # r2 was last changed by a CR that deleted entries only: it names no sha256
    found = deployers(changes, stores.inventory, "prod", {"r1": prod, "r2": prod})
    assert found == {"r1": crs["prod"], "r2": crs["deletion"]}
    assert changes.listed == ["prod"]
