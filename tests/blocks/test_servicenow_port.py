"""The ServiceNow blocks as the ports want them: links, decisions taken in ServiceNow, and the
incident store on the `incident` table; its contract is run on the git incident store too."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from blocks.incidents import GitIncidents
from blocks.servicenow import ServiceNowChangeManagement, ServiceNowIncidents, incident_fields
from changeflow.change import record_decision, transition
from changeflow.errors import BadInput, IntegrityError
from changeflow.incidents import Incident, incident_id, reconcile
from changeflow.models import Approval, ChangeRequest, ChangeState, Severity
from changeflow.ports import ChangeManagement, IncidentStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from servicenow_fake import ServiceNowFake


@pytest.fixture(scope="module")
def fake() -> Iterator[ServiceNowFake]:
    server = ServiceNowFake().start()
    yield server
    server.stop()


@pytest.fixture
def snow(fake: ServiceNowFake) -> ServiceNowChangeManagement:
    return ServiceNowChangeManagement(
        instance_url=fake.url, username=fake.username, password=SecretStr(fake.password)
    )


@pytest.fixture
def snow_incidents(snow: ServiceNowChangeManagement) -> ServiceNowIncidents:
    return ServiceNowIncidents.on_instance_of(snow)


def as_user(fake: ServiceNowFake, user: str) -> httpx.Client:
    password = fake.password if user == fake.username else fake.approvers[user]
    return httpx.Client(base_url=fake.url, auth=(user, password))


def draft(change_id: str) -> ChangeRequest:
    cr = ChangeRequest(
        id=change_id, environment="prod", region="us-south", deployment_run_id="deploy-1"
    )
    return transition(cr, ChangeState.assess, by="changeflow", why="filed")


def incident(finding: str, severity: Severity = Severity.high, **fields: object) -> Incident:
    uri = "https://git.example/org/app"
    found = date(2026, 11, 26)
    return Incident.model_validate(
        {
            "id": incident_id(uri, "bandit", finding),
            "asset_uri": uri,
            "tool": "bandit",
            "finding_id": finding,
            "evidence_type_id": "com.ibm.static_scan",
            "severity": severity,
            "found": found,
            "due": found + timedelta(days=30),
            "evidence_id": "e" * 64,
            "description": f"{finding} is bad",
            **fields,
        }
    )


# ------------------------------------------------------------------------- the fake's contract


def test_contract_incidents_are_numbered_and_prioritised(fake: ServiceNowFake) -> None:
    with as_user(fake, fake.username) as client:
        made = client.post(
            "/api/now/table/incident", json={"short_description": "x", "urgency": "1"}
        )
        assert made.status_code == 201
        row = made.json()["result"]
        assert row["number"].startswith("INC") and len(row["number"]) == 10
        assert (row["state"], row["impact"], row["priority"]) == ("1", "3", "3")
        path = f"/api/now/table/incident/{row['sys_id']}"
        assert client.patch(path, json={"state": "6"}).status_code == 403  # no resolution code
        resolved = client.patch(
            path,
            json={"state": "6", "close_code": "Solved (Permanently)", "close_notes": "fixed"},
        )
        assert resolved.status_code == 200 and resolved.json()["result"]["state"] == "6"
        assert client.patch(path, json={"urgency": "4"}).status_code == 400
        assert client.get("/api/now/table/problem").status_code == 400


def test_contract_every_write_records_who_updated(fake: ServiceNowFake) -> None:
    with as_user(fake, fake.username) as client:
        row = client.post("/api/now/table/change_request", json={}).json()["result"]
    assert (row["approval"], row["sys_updated_by"]) == ("not requested", fake.username)
    with as_user(fake, "cab.approver") as client:
        path = f"/api/now/table/change_request/{row['sys_id']}"
        row = client.patch(path, json={"approval": "approved"}).json()["result"]
        assert client.patch(path, json={"approval": "maybe"}).status_code == 400
    assert (row["approval"], row["sys_updated_by"]) == ("approved", "cab.approver")


# ---------------------------------------------------------------------- change requests


def test_both_blocks_are_the_ports(
    snow: ServiceNowChangeManagement, snow_incidents: ServiceNowIncidents
) -> None:
    assert isinstance(snow, ChangeManagement) and isinstance(snow_incidents, IncidentStore)
    git = GitIncidents(remote_url="file:///nowhere.git")
    assert isinstance(git, IncidentStore)


def test_link_is_the_record_on_the_instance_without_credentials(
    snow: ServiceNowChangeManagement,
) -> None:
    cr = snow.create(draft)
    assert snow.link(cr) == f"{snow.instance_url}/change_request.do?sysparm_query=number={cr.id}"
    hidden = ServiceNowChangeManagement(
        instance_url="https://bot:pw@acme.service-now.com/", token=SecretStr("t")
    )
    assert hidden.link(cr).startswith("https://acme.service-now.com/change_request.do?")


def test_a_decision_taken_in_servicenow_is_read_back(
    snow: ServiceNowChangeManagement, fake: ServiceNowFake
) -> None:
    cr = snow.create(draft)
    assert snow.decision(cr.id) is None
    sys_id = fake.records(f"number={cr.id}")[0]["sys_id"]
    path = f"/api/now/table/change_request/{sys_id}"
    with as_user(fake, fake.username) as client:
        client.patch(path, json={"approval": "requested"})
    assert snow.decision(cr.id) is None
    with as_user(fake, "cab.approver") as client:
        client.patch(path, json={"approval": "rejected"})
    decided = snow.decision(cr.id)
    assert decided is not None
    assert (decided.by, decided.decision, decided.automatic) == ("cab.approver", "rejected", False)
    assert abs((decided.date - datetime.now(decided.date.tzinfo)).total_seconds()) < 120
    with pytest.raises(BadInput, match="unknown change request CHG9999999"):
        snow.decision("CHG9999999")


def test_a_decision_stays_its_approvers_when_changeflow_writes_the_record_after(
    snow: ServiceNowChangeManagement, fake: ServiceNowFake
) -> None:
    cr = transition(snow.create(draft), ChangeState.authorize, by="changeflow", why="assessed")
    sys_id = fake.records(f"number={cr.id}")[0]["sys_id"]
    with as_user(fake, "cab.approver") as client:
        client.patch(f"/api/now/table/change_request/{sys_id}", json={"approval": "approved"})
    decided = snow.decision(cr.id)
    assert decided is not None and decided.source == "servicenow"
    snow.update(record_decision(cr, decided), "approved in ServiceNow")
    assert fake.records(f"number={cr.id}")[0]["sys_updated_by"] == fake.username
    # the API user wrote last; the decision is still the CAB member's, at the same moment
    assert snow.decision(cr.id) == decided and decided.by == "cab.approver"


def test_a_decision_recorded_through_changeflow_is_not_servicenows(
    snow: ServiceNowChangeManagement,
) -> None:
    cr = transition(snow.create(draft), ChangeState.authorize, by="changeflow", why="assessed")
    decided = record_decision(cr, Approval(by="alice", decision="approved", comment="ok"))
    snow.update(decided, "approved by alice", by="alice")
    assert snow.get(cr.id).decision == decided.decision
    assert snow.decision(cr.id) is None


# ------------------------------------------------------------------ the incident stores


@pytest.fixture(params=["git", "servicenow"])
def store(
    request: pytest.FixtureRequest, bare: Path, tmp_path: Path, snow: ServiceNowChangeManagement
) -> IncidentStore:
    if request.param == "git":
        return GitIncidents(remote_url=bare.as_uri(), cache_dir=str(tmp_path / "cache"))
    # each test its own instance: the fake's incident table is shared by the module otherwise
    server = ServiceNowFake().start()
    request.addfinalizer(server.stop)
    return ServiceNowIncidents(
        instance_url=server.url, username=server.username, password=SecretStr(server.password)
    )


def test_contract_incidents_round_trip(store: IncidentStore) -> None:
    assert store.incidents() == []
    opened = [incident("B105"), incident("B301", Severity.critical, url="https://x/B301")]
    store.put_incidents(opened, "ci run ci-1")
    assert store.incidents() == sorted(opened, key=lambda i: i.id)
    store.put_incidents([], "nothing")
    later = date(2026, 12, 3)
    writes = reconcile(store.incidents(), [opened[0]], later, scanned=[opened[1].pair])
    assert [(w.finding_id, w.state) for w in writes] == [("B301", "closed")]
    store.put_incidents(writes, "ci run ci-2")
    stored = {i.finding_id: i for i in store.incidents()}
    assert (stored["B301"].state, stored["B301"].closed) == ("closed", later)
    assert stored["B105"] == opened[0]
    reopened = opened[1].model_copy(update={"found": later})
    store.put_incidents([reopened], "ci run ci-3")
    assert {i.finding_id: i for i in store.incidents()}["B301"] == reopened


def test_incidents_are_records_people_work_with(
    snow_incidents: ServiceNowIncidents, fake: ServiceNowFake
) -> None:
    late = incident("B999", Severity.medium)
    snow_incidents.put_incidents([late], "ci run ci-7", by="ci")
    (row,) = fake.records(f"correlation_id={late.id}", table="incident")
    assert row == {**row, **incident_fields(late)}
    assert (row["urgency"], row["impact"], row["priority"], row["state"]) == ("2", "2", "3", "1")
    assert row["due_date"] == f"{late.due} 00:00:00"
    assert row["short_description"].startswith("changeflow: bandit B999 on https://git.example")
    (note,) = [n for n in fake.journal if n["element_id"] == row["sys_id"]]
    assert note["value"].startswith("changeflow incident record: ci run ci-7 (by ci)\n")
    fixed = late.model_copy(update={"state": "closed", "closed": date(2026, 12, 1)})
    snow_incidents.put_incidents([fixed], "ci run ci-8")
    (row,) = fake.records(f"correlation_id={late.id}", table="incident")
    assert (row["state"], row["close_code"]) == ("6", "Solved (Permanently)")
    assert len(fake.records(f"correlation_id={late.id}", table="incident")) == 1


def test_notes_by_others_do_not_speak_for_changeflow(
    snow_incidents: ServiceNowIncidents, fake: ServiceNowFake
) -> None:
    mine = incident("B601")
    snow_incidents.put_incidents([mine], "ci run ci-9")
    sys_id = fake.records(f"correlation_id={mine.id}", table="incident")[0]["sys_id"]
    forged = mine.model_copy(update={"state": "closed", "closed": date(2026, 11, 27)})
    with as_user(fake, "cab.approver") as client:
        note = f"changeflow incident record: closed by hand\n{forged.to_json().decode()}"
        client.patch(f"/api/now/table/incident/{sys_id}", json={"work_notes": note})
    assert {i.id: i for i in snow_incidents.incidents()}[mine.id] == mine


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda other: other.to_json().decode(), "holds INC-0000"),
        (lambda other: "{}", "is not an incident"),
    ],
)
def test_tampered_incident_note_is_an_integrity_error(
    fake: ServiceNowFake, tamper: Callable[[Incident], str], match: str
) -> None:
    store = ServiceNowIncidents(instance_url=fake.url, token=SecretStr(fake.token))
    mine = incident(f"B7{len(match)}")
    store.put_incidents([mine], "ci run ci-10")
    sys_id = fake.records(f"correlation_id={mine.id}", table="incident")[0]["sys_id"]
    other = mine.model_copy(update={"id": "INC-" + "0" * 24})
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.token}"}) as c:
        note = f"changeflow incident record: x\n{tamper(other)}"
        c.patch(f"/api/now/table/incident/{sys_id}", json={"work_notes": note})
    with pytest.raises(IntegrityError, match=match):
        store.incidents()
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.token}"}) as c:
        c.patch(
            f"/api/now/table/incident/{sys_id}",
            json={"work_notes": f"changeflow incident record: fix\n{mine.to_json().decode()}"},
        )
    assert mine in store.incidents()
