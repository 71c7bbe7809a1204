"""The whole lifecycle through the flows, on real SeaweedFS, git remotes and a Prefect server.

This is the demo's own story (three releases, seven change requests, the failing release's
approved through `changeflow cr approve` by two release managers, each with their own SSH key),
checked fact by fact afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from git import Repo
from stack_support import fresh_stack

from blocks import stores as config
from changeflow.models import ChangeState, CloseCategory
from changeflow.requests import AuditRequest, RecordStores
from cli.demo import DemoLifecycle
from flows.audit_flow import verify

# the module's fixture runs the whole lifecycle once, inside the first test's time budget
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def lifecycle(
    s3_server,
    prefect_api,
    tmp_path_factory: pytest.TempPathFactory,  # type: ignore[no-untyped-def]
):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("lifecycle")
    env = fresh_stack(s3_server, root)
    for key, value in env.items():
        mp.setenv(key, value)
    said: list[str] = []
    crs = DemoLifecycle(root, said.append).run()
    yield crs, env, said, root
    mp.undo()


def test_every_deployment_filed_its_own_change_request(lifecycle) -> None:  # type: ignore[no-untyped-def]
    crs, _, said, _ = lifecycle
    places = [(cr.environment, cr.region) for cr in crs]
    assert places == [("staging", "us-south"), ("prod", "us-south"), ("prod", "eu-de")] * 2 + [
        ("staging", "us-south")
    ], said
    assert len({cr.id for cr in crs}) == 7
    for cr in crs[:6]:
        assert cr.deployment_ready and cr.state is ChangeState.closed
        assert cr.close_category is CloseCategory.successful
        assert cr.approvals[0].automatic
        assert cr.evidence_summary_sha256 and cr.evidence_count >= 4
        assert cr.acceptance_evidence
        assert cr.assigned_to == "release-manager@example.com"


def test_prod_delta_is_only_what_changed(lifecycle) -> None:  # type: ignore[no-untyped-def]
    crs, *_ = lifecycle
    first_prod, second_prod = crs[1], crs[4]
    assert first_prod.delta == ["sample-app/sdist", "sample-app/settings", "sample-app/wheel"]
    assert second_prod.delta == ["sample-app/sdist", "sample-app/wheel"]
    assert second_prod.change_log and all(c.from_commit for c in second_prod.change_log)
    # issue 14: the app's commits since the deployed one, and the promotion that brought each
    assert all(c.commits and c.error is None for c in second_prod.change_log)
    assert second_prod.promotions and all(a.promotion for a in second_prod.arrivals or [])


def test_failing_check_is_not_auto_approved_and_a_person_approves(lifecycle) -> None:  # type: ignore[no-untyped-def]
    crs, *_ = lifecycle
    last = crs[-1]
    assert not last.deployment_ready
    assert any("com.ibm.unit_tests is failure" in r for r in last.readiness_reasons)
    assert last.failed_evidence
    # two release managers, each with the SSH key the demo made for them (quorum 2)
    assert [a.by for a in last.approvals] == ["alice@example.com", "bob@example.com"]
    assert all(a.signature and a.cr_digest and not a.automatic for a in last.approvals)
    assert last.approval_rule is not None and last.approval_rule.approvals_required == 2
    assert [a.identity for a in last.delta_authors] == ["changeflow demo <demo@changeflow.invalid>"]
    assert last.state is ChangeState.closed
    assert last.close_category is CloseCategory.successful_issues


def test_change_requests_are_files_with_history(lifecycle) -> None:  # type: ignore[no-untyped-def]
    crs, env, *_ = lifecycle
    remote = Repo(env["CHANGEFLOW_CHANGE_REPO_URL"].removeprefix("file://"))
    last = crs[-1]
    files = remote.git.ls_tree("-r", "--name-only", "main").splitlines()
    assert f"changes/{last.id}.json" in files and f"changes/{last.id}.md" in files
    log = remote.git.log("--format=%s", "main", "--", f"changes/{last.id}.json").splitlines()
    assert len(log) >= 5
    assert any("approved by bob@example.com" in line for line in log)


def test_tags_mark_what_is_deployed(lifecycle) -> None:  # type: ignore[no-untyped-def]
    crs, *_ = lifecycle
    inventory = config.inventory(None)
    for cr in [*crs[4:6], crs[6]]:  # the last deployment of each place
        assert inventory.resolve(f"{cr.region}_{cr.environment}_latest") == cr.inventory_commit
    assert inventory.resolve("prod_latest") == crs[5].inventory_commit


def test_installed_where_each_region_lives(lifecycle) -> None:  # type: ignore[no-untyped-def]
    *_, root = lifecycle
    for env, region in [("staging", "us-south"), ("prod", "us-south"), ("prod", "eu-de")]:
        site = Path(root) / "deployed" / env / region / "site" / "sample_app" / "__init__.py"
        assert site.exists()
    prod = (
        Path(root) / "deployed" / "prod" / "eu-de" / "site" / "sample_app" / "__init__.py"
    ).read_text()
    assert '"0.2.0"' in prod
    staging = (
        Path(root) / "deployed" / "staging" / "us-south" / "site" / "sample_app" / "__init__.py"
    ).read_text()
    assert '"0.3.0"' in staging


def test_verify_rehashes_everything_behind_prod(lifecycle) -> None:  # type: ignore[no-untyped-def]
    report = verify(AuditRequest(environment="prod"), RecordStores.from_env())
    assert report.ok, report.broken
    assert report.targets == ["prod/eu-de", "prod/us-south"]
    assert report.checked > 10


def test_evidence_is_retained_in_the_bucket(lifecycle) -> None:  # type: ignore[no-untyped-def]
    crs, *_ = lifecycle
    locker = config.evidence_locker(None)
    summary = locker.get_summary(crs[-1].evidence_summary_url, crs[-1].evidence_summary_sha256)
    head = locker.client.head_object(
        Bucket=locker.bucket, Key=locker.evidence_key(summary.evidence[0].evidence_id)
    )
    assert head["ObjectLockMode"] == "COMPLIANCE"


def test_the_trace_of_what_runs_in_prod_shows_where_it_was_deployed(lifecycle) -> None:  # type: ignore[no-untyped-def]
    crs, _, said, _ = lifecycle
    asked = next(i for i, line in enumerate(said) if line.startswith("changeflow trace "))
    trace = said[asked + 1]
    # the wheel of 0.2.0: promoted, so on master no more, but on prod's branch and labels
    assert "no artifact recorded" not in trace, trace
    assert trace.lstrip().startswith("sample-app/wheel @ sha256:"), trace
    digest = said[asked].rsplit("@sha256:", 1)[1]
    deployed = [cr.id for cr in crs if cr.bom.get("sample-app/wheel", "").endswith(digest)]
    # staging/us-south, then both prod regions
    assert len(deployed) == 3 and all(cr_id in trace for cr_id in deployed), (deployed, trace)
