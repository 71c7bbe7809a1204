"""ServiceNow keeps the incidents too: CI opens one for a failing finding in ServiceNow's
incident table, and once it is overdue a deploy's change request (also in ServiceNow) is not
approved automatically, with the overdue incident as the reason.

Real stack: SeaweedFS, git remotes, a Prefect server, and the local ServiceNow instance that
serves the documented Table API; the ServiceNow blocks are saved in Prefect and selected by name.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks import stores as config
from blocks.incidents import GitIncidents
from blocks.servicenow import ServiceNowChangeManagement, ServiceNowIncidents
from blocks.source import commit_all
from changeflow.incidents import FoundIn
from changeflow.models import ChangeState, Promotion
from changeflow.requests import BuildRequest, DeploymentRequest, RecordStores
from cli.local_stack import init_bare_repo
from flows.ci_flow import ci
from flows.deploy_flow import deploy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from servicenow_fake import ServiceNowFake

APP_TOML = """
name = "tiny-app"
build = ["python", "tool.py", "build", "dist/app.txt"]

[[artifacts]]
name = "bin"
glob = "dist/app.txt"

[[checks]]
name = "unit-tests"
command = ["python", "tool.py", "pass", "reports/junit.xml"]
report = "reports/junit.xml"
format = "junit"
evidence_type = "com.ibm.unit_tests"
tool = "pytest"

[[checks]]
name = "static-scan"
command = ["python", "tool.py", "fail", "reports/scan.xml"]
report = "reports/scan.xml"
format = "junit"
evidence_type = "com.ibm.static_scan"
tool = "scanner"
"""
TOOL_PY = """
import pathlib, sys
verdict, path = sys.argv[1:]
pathlib.Path(path).parent.mkdir(exist_ok=True)
if verdict == "build":
    pathlib.Path(path).write_text("tiny app v1")
    sys.exit(0)
failure = '<failure message="hard-coded password in settings.py"/>' if verdict == "fail" else ""
pathlib.Path(path).write_text(
    '<testsuite name="scan" tests="1" failures="%d">'
    '<testcase classname="scan" name="B105">%s</testcase></testsuite>'
    % (1 if failure else 0, failure)
)
"""
# Only the unit tests are required: the failing scan alone would not block the deploy, so the
# overdue incident is the one reason left. The approval wait times out at once.
ENVIRONMENTS = """
[environments.prod]
regions = ["r1"]
deploy = ["sh", "-c", "echo $CHANGEFLOW_CHANGE_REQUEST >> {runs}"]
approval_timeout_s = 1
[environments.prod.policy]
checks = [
    {{evidence_type_id = "com.ibm.unit_tests"}},
    {{evidence_type_id = "com.ibm.static_scan", level = "recommended"}},
]
"""


@pytest.fixture
def servicenow(stack_env: dict[str, str]) -> Iterator[tuple[ServiceNowFake, RecordStores]]:
    """A ServiceNow instance, its change-management and incident blocks saved in Prefect, and
    the stores that select them (the locker and the inventory from the variables)."""
    fake = ServiceNowFake().start()
    login = {"username": fake.username, "password": SecretStr(fake.password)}
    suffix = uuid.uuid4().hex[:8]
    ServiceNowChangeManagement(instance_url=fake.url, **login).save(f"snow-changes-{suffix}")
    ServiceNowIncidents(instance_url=fake.url, **login).save(f"snow-incidents-{suffix}")
    yield (
        fake,
        RecordStores(
            evidence_locker="",
            inventory="",
            change_management=f"snow-changes-{suffix}",
            incidents=f"snow-incidents-{suffix}",
        ),
    )
    fake.stop()


def _tiny_app(root: Path) -> tuple[str, str]:
    app = root / "tiny-app"
    app.mkdir()
    (app / "changeflow.toml").write_text(APP_TOML)
    (app / "tool.py").write_text(TOOL_PY)
    repo_url = init_bare_repo(root / "remotes" / "tiny-app.git")
    return repo_url, commit_all(app, "tiny app", repo_url)


def test_servicenow_keeps_incidents_and_an_overdue_one_blocks_the_deploy(
    servicenow: tuple[ServiceNowFake, RecordStores],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, stores = servicenow
    repo_url, sha = _tiny_app(tmp_path)

    built = ci(BuildRequest(repo_url=repo_url, commit_sha=sha, build_number="1"), stores)
    assert built.failed_checks == ["static-scan"]

    # the incident is a record of ServiceNow's incident table, and the store lists it
    store = config.incidents(stores.incidents, stores.change_management)
    assert isinstance(store, ServiceNowIncidents)
    (opened,) = store.incidents()
    # one incident per artifact, tool and finding
    artifact = config.inventory(None).entries("master")["tiny-app/bin"].provenance
    assert (opened.asset_uri, opened.tool, opened.state) == (artifact, "scanner", "open")
    assert opened.finding_id == "scan::B105" and opened.due > date.today()
    (row,) = fake.records(f"correlation_id={opened.id}", table="incident")
    assert (row["state"], row["urgency"], row["impact"]) == ("1", "1", "2")
    assert not list((tmp_path / "remotes").glob("changes.git/refs/heads/*"))  # nothing in git

    # it has been running in prod for a month and a half: still open, and overdue there
    today = date.today()
    in_prod = FoundIn(found=today - timedelta(days=45), due=today - timedelta(days=15))
    store.put_incidents(
        [opened.model_copy(update={"environments": {"prod": in_prod}})],
        "backdated: the finding was found in prod six weeks ago",
    )
    (late,) = store.incidents()

    config.inventory(None).promote(
        Promotion(
            id="p1", source="master", target="prod", assigned_to="rm",
            description="tiny app v1", backout_plan="redeploy the previous label",
        )
    )  # fmt: skip
    runs = tmp_path / "deploys.txt"
    environments = tmp_path / "environments.toml"
    environments.write_text(ENVIRONMENTS.format(runs=runs))
    monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))

    outcome = deploy(DeploymentRequest(environment="prod", region="r1"), stores)

    changes = config.change_management(stores.change_management)
    assert isinstance(changes, ServiceNowChangeManagement)
    cr = changes.get(outcome.change_request or "")
    assert fake.records(f"number={cr.id}")[0]["correlation_display"] == "changeflow"
    assert not cr.deployment_ready
    # the overdue incident is what blocks; the failing scan is recommended only (a warning)
    assert cr.readiness_reasons[0] == f"overdue: {late.line_in('prod')}"
    assert all("com.ibm.static_scan is failure" in r for r in cr.readiness_reasons[1:])
    # not approved automatically (the approval timeout records its rejection as automatic)
    assert not any(a.automatic and a.decision == "approved" for a in cr.approvals)
    assert cr.state is ChangeState.cancelled and outcome.state == "cancelled"  # nobody approved
    assert not runs.exists()


def test_without_a_saved_incident_store_incidents_live_beside_the_change_requests(
    servicenow: tuple[ServiceNowFake, RecordStores], stack_env: dict[str, str]
) -> None:
    fake, stores = servicenow
    beside = config.incidents("", stores.change_management)
    assert isinstance(beside, ServiceNowIncidents) and beside.instance_url == fake.url
    opened = config.open_stores(stores.model_copy(update={"incidents": "no-such-block"}))
    assert isinstance(opened.incidents, ServiceNowIncidents)
    assert isinstance(opened.changes, ServiceNowChangeManagement)
    git = config.incidents("", "")
    assert isinstance(git, GitIncidents)
    assert git.remote_url == stack_env["CHANGEFLOW_CHANGE_REPO_URL"]
