"""`cr approve` resumes the deploy run only once its pause shows the form it waits for.

Prefect pauses a run first and saves the form's schema after; a resume in between is refused
("Run input schema not found"), and the decision would reach the run only on a later pause.
"""

from __future__ import annotations

import contextvars
import threading
import time
from functools import partial
from uuid import UUID

from prefect import flow, get_client
from prefect.input.run_input import keyset_from_paused_state
from prefect.states import Paused, Running

from changeflow.models import ChangeRequest, ChangeState
from cli.changes import _resume
from flows.deploy_waits import ApprovalInput


@flow
def _paused_deploy() -> None:
    pass


def test_a_decision_waits_for_the_paused_run_to_show_its_form(prefect_api: str) -> None:
    with get_client(sync_client=True) as client:
        run_id = client.create_flow_run(_paused_deploy).id
        client.set_flow_run_state(run_id, Running(), force=True)
        paused = Paused(pause_key="approval")
        keyset = keyset_from_paused_state(paused)
        paused.state_details.run_input_keyset = keyset
        client.set_flow_run_state(run_id, paused, force=True)
    # the run's pause saves its form a moment after it paused
    # (in a copy of this context: Prefect's settings, the API it talks to, live in it)
    save = partial(ApprovalInput.save, keyset, flow_run_id=run_id)
    saved = threading.Timer(1.5, contextvars.copy_context().run, args=(save,))
    saved.start()
    cr = ChangeRequest(
        id="CHG0000001", environment="prod", region="r1", deployment_run_id="d",
        state=ChangeState.authorize, flow_run_id=str(run_id),
    )  # fmt: skip
    started = time.monotonic()
    said = _resume(cr, approved=True, by="carol", comment="")
    saved.join()

    assert said == f"; resumed deploy run {run_id}"
    assert time.monotonic() - started >= 1.5  # it waited for the form, it was not refused
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(str(run_id)))
        assert run.state is not None and run.state.is_running()
        assert ApprovalInput.load(keyset, flow_run_id=run_id).by == "carol"
