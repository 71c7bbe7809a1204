"""ServiceNowChangeManagement against a ServiceNow fake that serves the documented API over HTTP.

The first tests hold the fake to the documented contract; the rest run the block against it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr, ValidationError

from blocks.servicenow import ATTACHMENT_NAME, ServiceNowChangeManagement, ServiceNowError
from changeflow.change import close, record_decision, transition
from changeflow.errors import BadInput, IntegrityError, StaleChange, StorageUnavailable
from changeflow.models import (
    Approval,
    ChangeRequest,
    ChangeState,
    ChangeType,
    CloseCategory,
    Priority,
)
from changeflow.revisions import revision

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


def api(fake: ServiceNowFake, **kwargs: object) -> httpx.Client:
    return httpx.Client(base_url=fake.url, auth=(fake.username, fake.password), **kwargs)  # type: ignore[arg-type]


def draft(
    environment: str = "prod", region: str = "us-south", **fields: object
) -> Callable[[str], ChangeRequest]:
    def build(change_id: str) -> ChangeRequest:
        return transition(
            ChangeRequest(
                id=change_id,
                environment=environment,
                region=region,
                deployment_run_id="deploy-1",
                description="weekly release",
                purpose="ship the fix",
                backout_plan="redeploy the previous tag",
                priority=Priority.high,
                delta=["app/wheel"],
                **fields,  # type: ignore[arg-type]
            ),
            ChangeState.assess,
            by="changeflow",
            why="filed",
        )

    return build


# ------------------------------------------------------------------------- the fake's contract


def test_contract_create_numbers_and_wraps(fake: ServiceNowFake) -> None:
    with api(fake) as client:
        made = client.post(
            "/api/now/table/change_request",
            json={"short_description": "contract", "type": "standard"},
        )
        assert made.status_code == 201
        record = made.json()["result"]
        assert record["number"].startswith("CHG") and len(record["number"]) == 10
        assert record["state"] == "-5" and record["type"] == "standard"
        found = client.get(
            "/api/now/table/change_request",
            params={"sysparm_query": f"number={record['number']}"},
        ).json()["result"]
        assert [r["sys_id"] for r in found] == [record["sys_id"]]
        one = client.get(f"/api/now/table/change_request/{record['sys_id']}").json()["result"]
        assert one["short_description"] == "contract"
        assert client.get("/api/now/table/change_request/nope").status_code == 404


def test_contract_work_notes_append_journal_entries(fake: ServiceNowFake) -> None:
    with api(fake) as client:
        sys_id = client.post("/api/now/table/change_request", json={}).json()["result"]["sys_id"]
        for note in ("first", "second"):
            patched = client.patch(
                f"/api/now/table/change_request/{sys_id}", json={"work_notes": note}
            )
            assert patched.status_code == 200 and "work_notes" not in patched.json()["result"]
        notes = client.get(
            "/api/now/table/sys_journal_field",
            params={
                "sysparm_query": f"element_id={sys_id}^element=work_notes^ORDERBYDESCsys_created_on"
            },
        ).json()["result"]
        assert [n["value"] for n in notes] == ["second", "first"]


def test_contract_attachments(fake: ServiceNowFake) -> None:
    with api(fake) as client:
        sys_id = client.post("/api/now/table/change_request", json={}).json()["result"]["sys_id"]
        params = {"table_name": "change_request", "table_sys_id": sys_id, "file_name": "a.json"}
        meta = client.post(
            "/api/now/attachment/file",
            params=params,
            content=b'{"a":1}',
            headers={"Content-Type": "application/json"},
        )
        assert meta.status_code == 201 and meta.json()["result"]["size_bytes"] == "7"
        attachment = meta.json()["result"]["sys_id"]
        assert client.get(f"/api/now/attachment/{attachment}/file").content == b'{"a":1}'
        listed = client.get(
            "/api/now/attachment", params={"sysparm_query": f"table_sys_id={sys_id}"}
        ).json()["result"]
        assert [a["file_name"] for a in listed] == ["a.json"]
        missing = client.post(
            "/api/now/attachment/file",
            params={**params, "table_sys_id": "nope"},
            content=b"x",
            headers={"Content-Type": "text/plain"},
        )
        assert missing.status_code == 404


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"json": {"u_unknown": "x"}}, 400),
        ({"json": {"number": "CHG0000001"}}, 400),
        ({"json": {"state": "7"}}, 400),
        ({"json": {"state": -5}}, 400),
        ({"content": b"state=-5", "headers": {"Content-Type": "text/plain"}}, 415),
    ],
)
def test_contract_validates_bodies(
    fake: ServiceNowFake, request_kwargs: dict[str, object], status: int
) -> None:
    with api(fake) as client:
        response = client.post("/api/now/table/change_request", **request_kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.json()["status"] == "failure" and response.json()["error"]["message"]


@pytest.mark.parametrize("query", ["number!=CHG0000001", "colour=blue", "ORDERBYcolour", "number"])
def test_contract_rejects_queries_it_cannot_honour(fake: ServiceNowFake, query: str) -> None:
    with api(fake) as client:
        response = client.get("/api/now/table/change_request", params={"sysparm_query": query})
    assert response.status_code == 400


def test_contract_authentication(fake: ServiceNowFake) -> None:
    path = "/api/now/table/change_request"
    assert httpx.get(fake.url + path).status_code == 401
    assert httpx.get(fake.url + path, auth=(fake.username, "wrong")).status_code == 401
    bearer = {"Authorization": f"Bearer {fake.token}"}
    assert httpx.get(fake.url + path, headers=bearer).status_code == 200
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.get(fake.url + path, headers=wrong).json()["error"]["message"] == (
        "User Not Authenticated"
    )


# --------------------------------------------------------------------------------- the block


def test_create_lets_servicenow_number_it(
    snow: ServiceNowChangeManagement, fake: ServiceNowFake
) -> None:
    start = datetime(2026, 11, 26, 5, 30, tzinfo=timezone(timedelta(hours=1)))
    cr = snow.create(
        draft(planned_start=start, planned_end=start + timedelta(hours=1)),
        message="filed by the deploy flow",
        by="deployer",
    )
    row = fake.records(f"number={cr.id}")[0]
    assert cr.id == row["number"] and cr.state is ChangeState.assess
    assert row["state"] == "-4" and row["type"] == "standard" and row["priority"] == "2"
    assert row["short_description"] == "changeflow: deploy to prod / us-south"
    assert row["justification"] == "ship the fix"
    assert row["backout_plan"] == "redeploy the previous tag"
    assert row["implementation_plan"] == "- app/wheel"
    assert row["correlation_display"] == "changeflow"
    assert (row["start_date"], row["end_date"]) == ("2026-11-26 04:30:00", "2026-11-26 05:30:00")
    assert row["close_code"] == ""
    # the full record is attached and is what `get` returns
    attached = [a for a in fake.attachments.values() if a["table_sys_id"] == row["sys_id"]]
    assert [a["file_name"] for a in attached] == [ATTACHMENT_NAME]
    assert fake.blobs[attached[0]["sys_id"]] == cr.to_json() + b"\n"
    assert snow.get(cr.id) == cr
    (note,) = snow.history(cr.id)
    assert note.message.startswith(f"{cr.id}: filed by the deploy flow")
    assert "by: deployer" in note.message and note.author == fake.username


def test_update_maps_states_and_keeps_every_version(
    snow: ServiceNowChangeManagement, fake: ServiceNowFake
) -> None:
    cr = snow.create(draft(environment="staging"))
    sys_id = fake.records(f"number={cr.id}")[0]["sys_id"]
    expected = {"authorize": "-3", "scheduled": "-2", "implement": "-1", "review": "0"}
    cr = transition(cr, ChangeState.authorize, by="changeflow", why="assessed")
    snow.update(cr, "assessed")
    assert fake.records(f"number={cr.id}")[0]["state"] == expected["authorize"]
    cr = record_decision(cr, Approval(by="alice", decision="approved", comment="ok"))
    snow.update(cr, "approved by alice", by="alice")
    assert fake.records(f"number={cr.id}")[0]["state"] == expected["scheduled"]
    cr = transition(cr, ChangeState.implement, by="changeflow", why="deploying")
    snow.update(cr, "implement")
    assert fake.records(f"number={cr.id}")[0]["state"] == expected["implement"]
    cr = close(cr, CloseCategory.successful_issues, by="changeflow", notes="acceptance failed")
    snow.update(cr, "closed successful_issues")
    row = fake.records(f"number={cr.id}")[0]
    assert (row["state"], row["close_code"], row["close_notes"]) == (
        "3",
        "successful_issues",
        "acceptance failed",
    )
    assert snow.get(cr.id) == cr
    history = snow.history(cr.id)
    assert [h.message.splitlines()[0] for h in history] == [
        f"{cr.id}: closed successful_issues",
        f"{cr.id}: implement",
        f"{cr.id}: approved by alice",
        f"{cr.id}: assessed",
        f"{cr.id}: change request created",
    ]
    assert "by: alice" in history[2].message
    versions = [a for a in fake.attachments.values() if a["table_sys_id"] == sys_id]
    assert len(versions) == 5  # one per stored state: older versions stay for audit
    # writing the same state again writes nothing
    before = len(fake.journal)
    snow.update(cr, "closed again")
    assert len(fake.journal) == before


def test_cancelled_and_emergency(snow: ServiceNowChangeManagement, fake: ServiceNowFake) -> None:
    cr = snow.create(draft(type=ChangeType.emergency))
    assert fake.records(f"number={cr.id}")[0]["type"] == "emergency"
    cr = transition(cr, ChangeState.authorize, by="changeflow", why="assessed")
    cr = record_decision(cr, Approval(by="bob", decision="rejected"))
    snow.update(cr, "rejected by bob")
    row = fake.records(f"number={cr.id}")[0]
    assert (row["state"], row["close_code"]) == ("4", "")
    assert snow.get(cr.id).close_category is CloseCategory.cancelled


def test_list_returns_only_changeflow_records(
    snow: ServiceNowChangeManagement, fake: ServiceNowFake
) -> None:
    first = snow.create(draft(region="eu-de"))
    second = snow.create(draft(region="us-east"))
    with api(fake) as client:  # a change someone filed by hand in ServiceNow
        client.post("/api/now/table/change_request", json={"short_description": "by hand"})
    listed = snow.list()
    assert [cr.id for cr in listed] == sorted(cr.id for cr in listed)
    assert {first.id, second.id} <= {cr.id for cr in listed}
    assert all(cr.id in {r["number"] for r in fake.records("correlation_display=changeflow")}
               for cr in listed)  # fmt: skip


def test_unknown_ids_are_bad_input(snow: ServiceNowChangeManagement, fake: ServiceNowFake) -> None:
    with pytest.raises(BadInput, match="unknown change request CHG9999999"):
        snow.get("CHG9999999")
    with pytest.raises(BadInput):
        snow.get("../etc/passwd")
    with pytest.raises(BadInput, match="unknown change request CHG9999998"):
        snow.update(draft()("CHG9999998"), "never filed")
    assert snow.history("CHG9999999") == []
    with api(fake) as client:
        number = client.post("/api/now/table/change_request", json={}).json()["result"]["number"]
    with pytest.raises(BadInput, match=f"unknown change request {number}"):
        snow.get(number)  # not one of changeflow's


def test_tampered_attachment_is_an_integrity_error(
    snow: ServiceNowChangeManagement, fake: ServiceNowFake
) -> None:
    cr = snow.create(draft())
    pointer = fake.records(f"number={cr.id}")[0]["correlation_id"]
    fake.blobs[pointer] = draft()("CHG0000001").to_json()
    with pytest.raises(IntegrityError, match="holds CHG0000001"):
        snow.get(cr.id)
    fake.blobs[pointer] = b"{}"
    with pytest.raises(IntegrityError, match="not a change request"):
        snow.get(cr.id)


def test_wrong_credentials_are_a_clear_error_without_the_secret(
    fake: ServiceNowFake, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-" + fake.password[:8]
    block = ServiceNowChangeManagement(
        instance_url=fake.url, username=fake.username, password=SecretStr(secret)
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(ServiceNowError) as caught:
        block.list()
    message = str(caught.value)
    assert "401" in message and "refused the credentials" in message and fake.url in message
    assert secret not in message and secret not in caplog.text
    assert secret not in repr(block) and secret not in str(block)
    assert secret not in block.model_dump_json()
    bad_token = ServiceNowChangeManagement(instance_url=fake.url, token=SecretStr("nope-token"))
    with pytest.raises(ServiceNowError, match="401"):
        bad_token.get("CHG0000001")
    assert "nope-token" not in repr(bad_token)


def test_bearer_token_and_injected_transport(fake: ServiceNowFake) -> None:
    seen: list[httpx.Request] = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return super().handle_request(request)

    block = ServiceNowChangeManagement(
        instance_url=fake.url, token=SecretStr(fake.token)
    ).with_transport(Recording())
    cr = block.create(draft(region="ap-south"))
    assert block.get(cr.id) == cr
    assert seen and all(r.headers["authorization"] == f"Bearer {fake.token}" for r in seen)
    assert all(fake.token not in str(r.url) for r in seen)
    assert {r.method for r in seen} == {"GET", "POST", "PATCH"}


def test_a_decision_landing_during_a_write_is_not_overwritten(
    snow: ServiceNowChangeManagement, fake: ServiceNowFake
) -> None:
    # the Table API has no conditional update: the block looks again right before it points
    # the record at its new version; here alice's decision lands while bob's is being attached
    waiting = transition(snow.create(draft()), ChangeState.authorize, by="changeflow", why="x")
    snow.update(waiting, "assessed")
    read = revision(waiting)
    approved = record_decision(waiting, Approval(by="alice", decision="approved"))
    rejected = record_decision(waiting, Approval(by="bob", decision="rejected"))
    landed: list[ChangeRequest] = []

    class AliceFirst(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/api/now/attachment/file" and not landed:
                landed.append(snow.update(approved, "approved by alice", expected=read))
            return super().handle_request(request)

    bob = ServiceNowChangeManagement.on_instance_of(snow).with_transport(AliceFirst())
    notes = len(fake.journal)
    with pytest.raises(StaleChange, match="approved by alice"):
        bob.update(rejected, "rejected by bob", by="bob", expected=read)
    assert landed and snow.get(waiting.id) == approved
    assert len(fake.journal) == notes + 1  # alice's work note only
    assert snow.history(waiting.id)[0].message.startswith(f"{waiting.id}: approved by alice")


def test_unreachable_instance_is_storage_unavailable(fake: ServiceNowFake) -> None:
    block = ServiceNowChangeManagement(
        instance_url="http://127.0.0.1:9", username="u", password=SecretStr("p"), timeout=2
    )
    with pytest.raises(StorageUnavailable, match="unreachable"):
        block.list()


def test_credentials_are_required() -> None:
    with pytest.raises(ValidationError, match="username and password, or token"):
        ServiceNowChangeManagement(instance_url="https://x.service-now.com", username="u")
    with pytest.raises(ValidationError, match="http"):
        ServiceNowChangeManagement(instance_url="x.service-now.com", token=SecretStr("t"))


class TestServiceNowBlockStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ServiceNowChangeManagement

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        # offline: Prefect's CDN names its images `<hash>-<width>x<height>.<ext>`
        size = re.search(r"-(\d+)x(\d+)\.png$", str(block._logo_url))
        assert size and size[1] == size[2] and 1000 > int(size[1]) > 45
