"""What the deploy flow weighs besides the evidence summary, and the incidents a deployment opens.

A CR's readiness rests on its summary (`changeflow.readiness`), on the evidence re-hashed with
its attachments at filing time (a report changed in the locker since it was recorded), on the
incidents overdue in the environment, and on the acceptance results of the same bytes elsewhere.
"""

from __future__ import annotations

from datetime import date

from changeflow.delta import Delta
from changeflow.gate import judge_earlier_acceptance
from changeflow.models import ChangeRequest, Evidence, InventoryEntry
from changeflow.ports import Stores
from changeflow.project import EnvironmentSpec
from changeflow.readiness import Readiness, deployment_ready
from changeflow.summary import UNREADABLE, EvidenceSummary
from changeflow.tested import TestDeployment
from flows.gating import earlier_deployments
from tasks.evidence import verify_evidence
from tasks.incidents import incidents_in_environment, record_deployment_incidents
from tasks.inventory import read_entries

__all__ = ["evidence_links", "judge_delta", "note_deployment_incidents"]


def evidence_links(records: list[Evidence]) -> dict[str, str]:
    """Evidence id -> where a person reads it: its first report in the locker, else its run."""
    links = {}
    for r in records:
        link = r.attachments[0].url if r.attachments else r.origin.pipeline_run_url
        if link:
            links[r.id] = link
    return links


def judge_delta(
    stores: Stores,
    spec: EnvironmentSpec,
    environment: str,
    delta: Delta,
    previous: dict[str, InventoryEntry],
    summary: EvidenceSummary,
    today: date,
) -> tuple[Readiness, list[TestDeployment]]:
    """The readiness of a delta's CR, and where its artifacts were deployed before.

    Every evidence record the summary lists is read again with its attachments: one that no
    longer hashes to what was recorded makes the CR not ready (the reason names it) instead of
    stopping the run. Incidents of the delta's artifacts are dated in `environment` first
    (`tasks.incidents.incidents_in_environment`), then those overdue there block.
    """
    # one that could not be read at all is listed in the summary already
    relied_on = {i.evidence_id for i in summary.evidence if i.evidence_type_id != UNREADABLE}
    broken = verify_evidence(stores.evidence, sorted(relied_on))
    readiness = deployment_ready(summary, spec.policy, today=today, integrity_failures=broken)
    late = incidents_in_environment(
        stores.incidents, environment, delta.entries, previous, spec.grace_periods, today
    )
    readiness = readiness.blocked_by([f"overdue: {i.line_in(environment)}" for i in late])
    # the same bytes deployed before (staging for prod): a failed acceptance there counts here
    bom = {name: e.sha256 for name, e in delta.entries.items()}
    earlier = earlier_deployments(stores, bom, environment)
    return judge_earlier_acceptance(readiness, earlier, spec.earlier_acceptance), earlier


def note_deployment_incidents(
    stores: Stores,
    spec: EnvironmentSpec,
    cr: ChangeRequest,
    delta: Delta,
    *,
    deployed: bool,
    acceptance: Evidence | None,
) -> None:
    """Open incidents for a failed deploy command or failing acceptance tests of `cr`'s delta,
    and close this place's earlier ones that the deployment no longer reports."""
    previous = (
        read_entries(stores.inventory, cr.previous_inventory_commit)
        if cr.previous_inventory_commit
        else {}
    )
    record_deployment_incidents(
        stores.incidents, environment=cr.environment, region=cr.region,
        change_request=cr.id, entries=delta.entries, previous=previous, deployed=deployed,
        acceptance=acceptance, grace=spec.grace_periods, today=date.today(),
    )  # fmt: skip
