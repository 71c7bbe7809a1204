"""The ci flow: build an application's artifacts, leave evidence of every check, record entries."""

import shutil
from datetime import date

from prefect import flow, get_run_logger
from pydantic import BaseModel

from blocks.stores import open_stores
from changeflow.evidence import new_entries, recorded_by
from changeflow.models import Asset, Evidence, EvidenceResult, utcnow
from changeflow.requests import DEFAULT_STORES, BuildRequest, RecordStores, project_environments
from flows.common import run_scope, run_url
from tasks.build import build_artifacts, checkout_source, publish_artifacts, run_check
from tasks.evidence import gather_evidence, record_report
from tasks.incidents import record_incidents
from tasks.inventory import add_entries, read_commit_author, read_entries
from tasks.signing import sign_provenance

__all__ = ["CiResult", "ci"]


class CiResult(BaseModel):
    """What one CI run left behind."""

    scope: str
    commit_uri: str
    entries: list[str]
    recorded: list[str]
    evidence: dict[str, str]
    failed_checks: list[str]


@flow(name="ci", flow_run_name="ci-{request.commit_sha:.12}")
def ci(request: BuildRequest, stores: RecordStores = DEFAULT_STORES) -> CiResult:
    """Build one commit, run its checks into evidence and record its artifacts.

    Failing checks do not stop the build: they leave failure evidence and open incidents, and a
    change request that would deploy the artifact cannot be auto-approved. A rerun of the same
    build carries on: the checks it already recorded evidence of, for the same artifacts, are
    not run again.

    An incident is one artifact's finding of one tool, due its severity's grace period after it
    is found. CI records entries on `master`, which feeds every environment, so it uses the
    strictest grace periods the environments file (`CHANGEFLOW_ENVIRONMENTS`) configures: for
    each severity, the shortest of any environment (the defaults when no file is configured).
    Each environment's own due date runs from when a deployment first finds it there.

    Args:
        request: the application and the commit to build.
        stores: the saved blocks that hold the records.
    """
    logger = get_run_logger()
    started = utcnow()
    # read first: a broken environments file stops the build before anything is recorded
    grace = project_environments().strictest_grace_periods()
    opened = open_stores(stores)
    locker, inventory = opened.evidence, opened.inventory
    # a rerun of the same build (its number, or the same flow run retried) carries on
    scope = f"ci-{request.build_number}" if request.build_number else run_scope("ci")
    repo_url, commit_sha, branch = request.repo_url, request.commit_sha, request.branch
    build_number = request.build_number or utcnow().strftime("%Y%m%d%H%M%S")

    workdir, app = checkout_source(repo_url, commit_sha)
    try:
        built = build_artifacts(workdir, app)
        commit = Asset.for_uri(f"{repo_url}#{commit_sha}")
        published = publish_artifacts(
            locker, built, app_name=app.name, commit=commit, build_number=build_number, scope=scope
        )
        # who wrote the commit may not approve deploying it (separation of duties)
        author = read_commit_author(workdir, commit_sha)
        entries = [entry.model_copy(update={"author": author}) for entry, _ in published]
        artifact_assets = [asset for _, asset in published]
        evidence: dict[str, str] = {}
        records: list[Evidence] = []
        failed: list[str] = []
        assets = [commit, *artifact_assets]
        done = recorded_by(gather_evidence(locker, [commit.id]), scope, [a.id for a in assets])
        for check in app.checks:
            record = done.get((check.evidence_type, check.tool))
            if record is not None:
                logger.info("check %s: recorded before this rerun as %s", check.name, record.id)
            else:
                _, report = run_check(workdir, check)
                record, _ = record_report(
                    locker,
                    report=report,
                    label=check.report.rsplit("/", 1)[-1],
                    fmt=check.format,
                    thresholds=check.thresholds,
                    evidence_type_id=check.evidence_type,
                    tool=check.tool,
                    scope=scope,
                    assets=assets,
                    pipeline_id="changeflow-ci",
                    pipeline_run_url=run_url(),
                )
            evidence[check.name] = record.id
            records.append(record)
            if record.details.result is not EvidenceResult.success:
                failed.append(check.name)
                logger.warning("check %s: %s", check.name, record.details.summary)
            else:
                logger.info("check %s: %s", check.name, record.details.summary)
        # the build's signed provenance lists its evidence: what a deployment counts for it
        sign_provenance(
            locker,
            run_id=scope,
            repository_url=repo_url,
            commit_sha=commit_sha,
            artifacts={e.app_artifacts["filename"]: e.sha256[7:] for e in entries},
            evidence_ids=[r.id for r in records],
            started=started,
            run_url=run_url(),
        )
        changed_incidents = record_incidents(
            opened.incidents, records, artifact_assets, repo_url, grace, date.today(), scope
        )
        if changed_incidents:
            logger.info("incidents opened or closed: %d", len(changed_incidents))
        current = read_entries(inventory, branch)
        changed = new_entries(entries, current)
        add_entries(
            inventory, changed, branch, f"ci: {app.name} {commit_sha[:12]} build {build_number}"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return CiResult(
        scope=scope,
        commit_uri=commit.uri,
        entries=[e.name for e in entries],
        recorded=[e.name for e in changed],
        evidence=evidence,
        failed_checks=failed,
    )
