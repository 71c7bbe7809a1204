"""The audit flow: re-verify every hash behind what is deployed."""

from datetime import date

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from blocks.signing import Trust
from blocks.stores import open_stores
from changeflow.change import deployed_regions
from changeflow.models import ChangeRequest, CloseCategory
from changeflow.ports import Stores, Verification
from changeflow.requests import DEFAULT_STORES, AuditRequest, RecordStores
from tasks.audit import (
    find_deployers,
    verify_approvals,
    verify_chain,
    verify_change_request,
    verify_entries,
)
from tasks.change import read_change_request
from tasks.incidents import overdue_incidents
from tasks.inventory import read_labels
from tasks.signing import current_trust

__all__ = ["VerificationReport", "verify"]


class VerificationReport(BaseModel):
    """What was re-hashed and what did not verify."""

    targets: list[str] = Field(default_factory=list)
    change_requests: list[str] = Field(default_factory=list)
    checked: int = 0
    broken: list[str] = Field(default_factory=list)
    overdue_incidents: list[str] = Field(
        default_factory=list, description="Open incidents past their due date (not breakage)."
    )

    @property
    def ok(self) -> bool:
        """Something was re-hashed, and all of it verified."""
        return not self.broken and self.checked > 0

    def count(self, found: Verification, where: str | None = None) -> None:
        """Add what one verification re-hashed, naming `where` in each broken line."""
        self.checked += found.checked
        self.broken += [f"{where}: {b}" if where else b for b in found.broken]


_SUCCESSFUL = (CloseCategory.successful, CloseCategory.successful_issues)


def _verify_one(
    report: VerificationReport, opened: Stores, cr: ChangeRequest, trust: Trust | None
) -> None:
    """Everything one CR rests on: hashes, people's decisions, its chain (`check_chain`)."""
    report.count(verify_change_request(opened.evidence, cr))
    report.count(verify_approvals(cr))
    report.count(verify_chain(opened.evidence, opened.changes, cr, trust))
    report.change_requests.append(cr.id)


def _run_name() -> str:
    request = flow_run.parameters["request"]
    return f"verify-{request.environment or request.change_request}"


@flow(name="verify", flow_run_name=_run_name)
def verify(request: AuditRequest, stores: RecordStores = DEFAULT_STORES) -> VerificationReport:
    """Re-hash the summary, evidence, attachments and artifacts behind a deployment.

    Every person's decision on each CR is checked again too: its signature, the separation of
    duties and the quorum (`tasks.audit.verify_approvals`); and the chain behind it: its signed
    history and checkpoints, its signed decision, an emergency's review (`check_chain`). Each
    label deployed must point where a CR closed successful says.

    Args:
        request: what is deployed to an environment (or one region), or what a CR was approved on.
        stores: the saved blocks that hold the records.
    """
    environment, region = request.environment, request.region
    opened = open_stores(stores)
    report = VerificationReport()
    trust = current_trust()
    if request.change_request:
        cr = read_change_request(opened.changes, request.change_request)
        report.targets.append(cr.id)
        _verify_one(report, opened, cr, trust)
    if environment:
        tags = deployed_regions(read_labels(opened.inventory), environment)
        if region:
            tags = {r: c for r, c in tags.items() if r == region}
        if not tags:
            report.broken.append(
                f"nothing is deployed to {environment}" + (f"/{region}" if region else "")
            )
        found = find_deployers(opened.changes, opened.inventory, environment, tags)
        for reg, commit in sorted(tags.items()):
            report.targets.append(f"{environment}/{reg}")
            deployer = found[reg]
            if deployer is None:
                report.broken.append(f"{environment}/{reg}: no change request deployed {commit}")
            else:
                _verify_one(report, opened, deployer, trust)
                if deployer.close_category not in (None, *_SUCCESSFUL):
                    report.broken.append(
                        f"{environment}/{reg}: labels.deployed: the label points at {commit[:12]}, "
                        f"which {deployer.id} closed {deployer.close_category.value}"
                    )
            report.count(
                verify_entries(opened.evidence, opened.inventory, commit), f"{environment}/{reg}"
            )
    report.overdue_incidents = [
        i.line for i in overdue_incidents(opened.incidents, [], date.today())
    ]
    logger = get_run_logger()
    for late in report.overdue_incidents:
        logger.warning("overdue incident: %s", late)
    for problem in report.broken:
        logger.error("does not verify: %s", problem)
    logger.info("verified %d records; %d problems", report.checked, len(report.broken))
    return report
