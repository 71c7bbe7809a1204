"""The README's three Automations, created by docs/automations.py, fire on changeflow's events.

A local HTTP endpoint stands in for Slack: the notification block is a custom webhook to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, str]]]]:
    received: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def _wait(what: str, check, timeout: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def test_release_managers_are_notified(
    prefect_api: str, webhook: tuple[str, list[dict[str, str]]]
) -> None:
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events import emit_event

    url, received = webhook
    name = f"release-managers-{uuid.uuid4().hex[:8]}"
    CustomWebhookNotificationBlock(
        name="changeflow", url=url, json_data={"subject": "{{subject}}", "text": "{{body}}"}
    ).save(name)
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "automations.py"),
         "--notify", f"custom-webhook/{name}", "--approval-after", "10"],
        env={**os.environ, "PREFECT_API_URL": prefect_api},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # issue 13 added the third: an emergency awaiting review
    assert done.stdout.count("created automation") == 3
    approval = Automation.read(name="changeflow: CR waiting for approval")
    assert approval.trigger.posture == "Proactive"

    waiting, approved = "CHG9000001", "CHG9000002"
    for cr in (waiting, approved):
        emit_event(
            "changeflow.change_request.created",
            resource={"prefect.resource.id": f"changeflow.change_request.{cr}"},
        )
    emit_event(
        "changeflow.change_request.approved",
        resource={"prefect.resource.id": f"changeflow.change_request.{approved}"},
    )
    emit_event(
        "changeflow.change_request.emergency_review",
        resource={"prefect.resource.id": "changeflow.change_request.CHG9000003"},
        payload={"needed": 2},
    )
    emit_event(
        "changeflow.evidence.failed",
        resource={"prefect.resource.id": "changeflow.evidence.3f2a", "changeflow.type": "unit"},
        payload={"evidence_type_id": "com.ibm.unit_tests", "result": "failure"},
    )

    def subjects() -> list[str]:
        return [m["subject"] for m in received]

    _wait("the evidence notification", lambda: any("failing evidence" in s for s in subjects()))
    failed = next(m for m in received if "failing evidence" in m["subject"])
    assert "changeflow.evidence.3f2a" in failed["subject"]
    assert "com.ibm.unit_tests" in failed["text"]

    _wait("the emergency notification", lambda: any("emergency" in s for s in subjects()))
    emergency = next(m for m in received if "emergency" in m["subject"])
    assert emergency["subject"] == "CHG9000003: emergency awaits review"
    assert "(2 still needed)" in emergency["text"]

    _wait("the approval reminder", lambda: any(waiting in s for s in subjects()))
    reminder = next(m for m in received if waiting in m["subject"])
    assert f"changeflow cr approve {waiting} --by NAME" in reminder["text"]
    # the CR approved in time reminds nobody (its window closed together with the other's)
    assert not any(approved in s for s in subjects()), subjects()
