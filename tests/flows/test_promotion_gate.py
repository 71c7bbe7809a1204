"""Only tested artifacts reach prod: the promotion gate on the real stack (issue 14).

SeaweedFS, bare git remotes and a Prefect server, as the suite's conftest starts them: staging
deploys an artifact whose acceptance tests fail, and the release manager tries to promote it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from stack_support import git_in, run_changeflow

from blocks import stores as config
from changeflow.models import ChangeState, CloseCategory
from changeflow.requests import DeploymentRequest, RecordStores
from flows.deploy_flow import deploy

_JUNIT = (
    '<testsuite name="acceptance" tests="1" failures="{failures}">'
    '<testcase classname="smoke" name="responds">{failure}</testcase></testsuite>'
)
_PROMOTE = [
    "promote", "--source", "staging", "--target", "prod", "--priority", "moderate",
    "--assigned-to", "rm", "--description", "to prod", "--backout-plan", "redeploy",
]  # fmt: skip


def _environments(tmp_path: Path, passing: bool) -> Path:
    """staging (r1) deploys and runs acceptance tests that pass or fail; prod (r1) deploys."""
    report = tmp_path / "acceptance.xml"
    failure = "" if passing else '<failure message="down">service down</failure>'
    report.write_text(_JUNIT.format(failures=0 if passing else 1, failure=failure))
    path = tmp_path / "environments.toml"
    path.write_text(
        '[environments.staging]\nregions = ["r1"]\ndeploy = ["true"]\n'
        "[environments.staging.acceptance]\n"
        f'command = ["cp", "{report}", "report.xml"]\nreport = "report.xml"\n'
        '[environments.prod]\nregions = ["r1"]\ndeploy = ["true"]\n'
    )
    return path


def test_a_staging_acceptance_failure_keeps_the_artifact_out_of_prod(
    stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(_environments(tmp_path, passing=False)))
    _on_master_then_staging()
    staging = deploy(DeploymentRequest(environment="staging", region="r1"), RecordStores.from_env())
    assert staging.close_category == CloseCategory.successful_issues.value  # acceptance failed
    inventory = config.inventory(None)
    before = inventory.resolve("prod")

    refused = run_changeflow(*_PROMOTE)

    assert refused.returncode == 1
    assert (
        f"app/bin: deployed to staging/r1 under {staging.change_request} but acceptance failed"
        in refused.stderr
    )
    # nothing promoted: prod did not move and no promotion branch was left behind
    assert before is None and inventory.resolve("prod") is None
    remote = Path(stack_env["CHANGEFLOW_INVENTORY_URL"].removeprefix("file://"))
    assert "prod" not in git_in(remote, "for-each-ref", "--format=%(refname)")

    overridden = run_changeflow(*_PROMOTE, "--emergency")

    assert overridden.returncode == 0, overridden.stderr
    assert "gate overridden: app/bin: deployed to staging/r1" in overridden.stdout
    promotion = inventory.promotion("prod")
    assert promotion is not None and promotion.emergency and promotion.source == "staging"
    assert promotion.gate_overrides == [
        f"app/bin: deployed to staging/r1 under {staging.change_request} but acceptance failed"
    ]

    # the prod CR carries the override, the staging deployment and the block it causes
    request = DeploymentRequest(environment="prod", region="r1", emergency=True)
    outcome = deploy(request, RecordStores.from_env())
    assert outcome.change_request is not None
    cr = config.change_management(None).get(outcome.change_request)
    assert cr.gate_overrides == promotion.gate_overrides
    [tested] = cr.test_deployments
    assert (tested.environment, tested.region, tested.change_request) == (
        "staging", "r1", staging.change_request,
    )  # fmt: skip
    assert (tested.outcome, tested.acceptance) == ("successful_issues", "failed")
    assert not cr.deployment_ready
    assert (
        f"app/bin: acceptance failed in staging/r1 under {staging.change_request}"
        in cr.readiness_reasons
    )
    assert cr.state is ChangeState.review  # the emergency went ahead, approval after the fact
    rendered = run_changeflow("cr", "get", cr.id)
    assert "## Test deployments" in rendered.stdout and "Promotion gate overridden" in (
        rendered.stdout
    )


def test_a_tested_artifact_is_promoted(
    stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(_environments(tmp_path, passing=True)))
    _on_master_then_staging()
    staging = deploy(DeploymentRequest(environment="staging", region="r1"), RecordStores.from_env())
    assert staging.close_category == CloseCategory.successful.value

    promoted = run_changeflow(*_PROMOTE)

    assert promoted.returncode == 0, promoted.stderr
    assert "gate overridden" not in promoted.stdout
    promotion = config.inventory(None).promotion("prod")
    assert promotion is not None and promotion.entries == ["app/bin"]
    assert promotion.gate_overrides == []


def _on_master_then_staging() -> None:
    """app/bin with passing CI evidence on master, promoted to staging (not yet deployed)."""
    from changeflow.evidence import make_evidence
    from changeflow.models import Asset, InventoryEntry
    from changeflow.readiness import DEFAULT_REQUIRED_TYPES

    locker = config.evidence_locker(None)
    stored = locker.store_attachment_bytes(b"artifact bytes of app/bin", "app.bin")
    artifact = Asset.for_uri(f"artifact://app/bin@{stored.hash}")
    for kind in DEFAULT_REQUIRED_TYPES:
        evidence = make_evidence(
            evidence_type_id=kind, result="success", tool="t", scope="ci-1", assets=[artifact]
        )
        locker.put_evidence(evidence, [artifact])
    entry = InventoryEntry(
        name="app/bin", artifact=stored.url, version="1", type="file", sha256=stored.hash,
        repository_url="https://example.com/app", commit_sha="c" * 40, build_number="1",
        pipeline_run_id="ci-1", provenance=artifact.uri, app_artifacts={"filename": "app.bin"},
    )  # fmt: skip
    config.inventory(None).add_entries([entry])
    moved = run_changeflow("promote", "--source", "master", "--target", "staging", *_PROMOTE[5:])
    assert moved.returncode == 0, moved.stderr
