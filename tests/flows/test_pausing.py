"""A paused run notices its resume from the server's event stream, and only from its state.

Against the session's Prefect server: the run pauses for a form, another thread answers it the
way the UI and `changeflow cr approve` do (`resume_flow_run`), or forges the event a resume
would send.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from uuid import UUID

import anyio
import pytest
from prefect import flow, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event
from prefect.events.worker import EventsWorker
from prefect.flow_runs import resume_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run

import flows.pausing as pausing
from flows.pausing import pause_for_input


class Answer(RunInput):
    approved: bool
    by: str = ""


@flow
def waits_for_an_answer(timeout_s: int) -> tuple[str, Answer | None]:
    return str(flow_run.get_id()), pause_for_input(Answer, timeout_s=timeout_s, key="answer")


def _when_paused(act: Callable[[UUID], object], after_s: float = 0.0) -> threading.Thread:
    """Run `act` on the flow run of this test `after_s` after the run is paused."""

    def person() -> None:
        deadline = time.monotonic() + 60
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                paused = client.read_flow_runs(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=["waits-for-an-answer"])),
                    flow_run_filter=FlowRunFilter(
                        state=FlowRunFilterState(
                            type=FlowRunFilterStateType(any_=[StateType.PAUSED])
                        )
                    ),
                )
                if paused:
                    time.sleep(after_s)
                    act(paused[0].id)
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(person,))
    thread.start()
    return thread


def test_a_resume_is_noticed_from_the_event_stream_without_reading_the_run_again(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # reading the run again only after an hour: the answer can only come through the stream
    # (answered a moment after the pause, when the run has read itself and listens)
    monkeypatch.setattr(pausing, "FALLBACK_POLL_S", 3600.0)
    answering = _when_paused(
        lambda run_id: resume_flow_run(run_id, run_input={"approved": True, "by": "ada"}),
        after_s=3.0,
    )
    started = time.monotonic()
    _, answer = waits_for_an_answer(timeout_s=60)
    answering.join()
    assert answer is not None and answer.approved and answer.by == "ada"
    # noticed while paused, not by the last read when the pause ran out
    assert time.monotonic() - started < 60


class _HeldUpgrade:
    """A proxy that takes the websocket's connection and never answers its upgrade."""

    async def __aenter__(self) -> None:
        await anyio.sleep_forever()

    async def __aexit__(self, *_: object) -> None:
        pass


def _refused(**_: object) -> object:
    raise OSError("the event stream is blocked by a proxy")


@pytest.mark.parametrize("stream", [_refused, lambda **_: _HeldUpgrade()], ids=["refused", "held"])
def test_without_the_event_stream_the_run_reads_itself_until_resumed(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch, stream: Callable[..., object]
) -> None:
    monkeypatch.setattr(pausing, "get_events_subscriber", stream)
    monkeypatch.setattr(pausing, "_CONNECT_S", 1.0)
    monkeypatch.setattr(pausing, "FALLBACK_POLL_S", 3600.0)  # unused without a stream
    answering = _when_paused(
        lambda run_id: resume_flow_run(run_id, run_input={"approved": False, "by": "bob"}),
        after_s=3.0,
    )
    _, answer = waits_for_an_answer(timeout_s=60)
    answering.join()
    assert answer is not None and not answer.approved and answer.by == "bob"


def test_a_forged_resume_event_does_not_resume_the_run(prefect_api: str) -> None:
    """Anyone with API access can emit events: one claiming the run is Running is only a
    reason to read the run, which is still paused, and the pause runs out unanswered."""

    def forge(run_id: UUID) -> None:
        for _ in range(3):
            emit_event(
                event="prefect.flow-run.Running",
                resource={
                    "prefect.resource.id": f"prefect.flow-run.{run_id}",
                    "prefect.state-type": "RUNNING",
                    "prefect.state-name": "Running",
                },
            )
        EventsWorker.drain_all(timeout=5)

    forging = _when_paused(forge, after_s=1.0)
    _, answer = waits_for_an_answer(timeout_s=5)
    forging.join()
    assert answer is None


def test_an_unanswered_pause_ends_with_no_answer(prefect_api: str) -> None:
    run_id, answer = waits_for_an_answer(timeout_s=1)
    assert answer is None
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    assert run.state is not None and not run.state.is_paused()
