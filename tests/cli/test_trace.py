"""`changeflow trace` on the real stack (issue 14): SeaweedFS, bare git remotes, a Prefect API.

An artifact built by CI (passing evidence), deployed to staging by the deploy flow (acceptance
passed) and promoted to prod, with an incident on it: trace answers what happened to it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from stack_support import git_in, run_changeflow, ship_to_prod

from blocks import stores as config
from changeflow.incidents import Incident, incident_id
from changeflow.models import CloseCategory, Promotion, Severity
from changeflow.requests import DeploymentRequest, RecordStores
from flows.deploy_flow import deploy

_JUNIT = (
    '<testsuite name="acceptance" tests="1" failures="0">'
    '<testcase classname="smoke" name="responds"/></testsuite>'
)


def _environments(tmp_path: Path) -> Path:
    report = tmp_path / "acceptance.xml"
    report.write_text(_JUNIT)
    path = tmp_path / "environments.toml"
    path.write_text(
        '[environments.staging]\nregions = ["r1"]\ndeploy = ["true"]\n'
        "[environments.staging.acceptance]\n"
        f'command = ["cp", "{report}", "report.xml"]\nreport = "report.xml"\n'
        '[environments.prod]\nregions = ["r1"]\ndeploy = ["true"]\n'
    )
    return path


def test_trace_shows_a_prod_artifacts_build_staging_deployment_and_incident(
    stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(_environments(tmp_path)))
    ship_to_prod(["app/bin"], "p1")
    inventory = config.inventory(None)
    inventory.promote(
        Promotion(id="s1", source="master", target="staging", assigned_to="rm",
                  description="d", backout_plan="b")
    )  # fmt: skip
    staging = deploy(DeploymentRequest(environment="staging", region="r1"), RecordStores.from_env())
    assert staging.close_category == CloseCategory.successful.value
    entry = inventory.get("app/bin", "prod")
    assert entry is not None
    late = datetime.now(UTC).date() - timedelta(days=1)  # the CLI judges overdue in UTC
    incident = Incident(
        id=incident_id(entry.provenance, "scanner", "CVE-1"), asset_uri=entry.provenance,
        tool="scanner", finding_id="CVE-1", evidence_type_id="com.ibm.cve_scan",
        severity=Severity.high, found=late - timedelta(days=30), due=late, evidence_id="e1",
    )  # fmt: skip
    config.incidents(None).put_incidents([incident], "a finding on app/bin")

    human = run_changeflow("trace", "app/bin")

    assert human.returncode == 0, human.stderr
    assert f"app/bin @ {entry.sha256[:19]}" in human.stdout
    assert "ci-1             build 1      cccccccccccc  passed (6 evidence)" in human.stdout
    assert f"staging    r1         {staging.change_request}" in human.stdout
    assert "acceptance passed" in human.stdout
    assert f"{incident.id}  overdue" in human.stdout

    # by the artifact's uri, as one JSON document: the same artifact, its evidence in full
    by_uri = run_changeflow("trace", entry.provenance, "--json")
    assert by_uri.returncode == 0, by_uri.stderr
    [traced] = json.loads(by_uri.stdout)["artifacts"]
    assert (traced["entry"], traced["sha256"]) == ("app/bin", entry.sha256)
    [build] = traced["builds"]
    assert build["pipeline_run_id"] == "ci-1" and build["evidence"]
    assert {e["result"] for e in build["evidence"]} == {"success"}
    [deployed] = traced["deployments"]
    assert (deployed["environment"], deployed["change_request"], deployed["acceptance"]) == (
        "staging", staging.change_request, "passed",
    )  # fmt: skip
    assert [(i["id"], i["state"]) for i in traced["incidents"]] == [(incident.id, "overdue")]

    # by the staging CR, and everything running in prod
    assert staging.change_request is not None
    by_cr = json.loads(run_changeflow("trace", staging.change_request, "--json").stdout)
    assert [a["entry"] for a in by_cr["artifacts"]] == ["app/bin"]
    in_prod = json.loads(run_changeflow("trace", "--environment", "prod", "--json").stdout)
    assert in_prod["subject"] == "prod"
    assert [(a["entry"], a["sha256"]) for a in in_prod["artifacts"]] == [("app/bin", entry.sha256)]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "trace needs"),
        (("no/such/entry",), "no entry, artifact or change request"),
        (("app\x1b[2J",), "not an entry name"),
        (("app/bin", "--environment", "prod"), "not both"),
        (("--environment", "../prod"), "environment must be"),
        (("--region", "r1"), "--region needs --environment"),
    ],
)
def test_trace_refuses_bad_input_with_one_line_and_writes_nothing(
    stack_env: dict[str, str], args: tuple[str, ...], says: str
) -> None:
    remotes = [
        Path(stack_env[k].removeprefix("file://"))
        for k in ("CHANGEFLOW_INVENTORY_URL", "CHANGEFLOW_CHANGE_REPO_URL")
    ]
    before = [git_in(r, "for-each-ref") for r in remotes]

    refused = run_changeflow("trace", *args)

    assert refused.returncode == 2
    assert refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1 and says in refused.stderr
    assert [git_in(r, "for-each-ref") for r in remotes] == before
