"""Pausing a flow run for a form, and noticing its resume as soon as the server has it.

Prefect's `pause_flow_run` reads the paused run every `poll_interval` seconds: a decision waits
up to that long before the run goes on, and every paused run costs the server a read that
often, for as long as it waits (hours, for an approval). Here the run listens on the server's
event stream for its own state changes and reads the run when one arrives: a resume is seen
within a round trip. A read every `FALLBACK_POLL_S` covers an event lost with a dropped
connection; where the stream cannot be reached at all, the run is read every
`STREAMLESS_POLL_S`, as `pause_flow_run(poll_interval=1)` did.

The pause itself is Prefect's: the same `Paused` state (with its timeout and key), the same
run-input keyset, so the UI shows the form and `resume_flow_run` answers it as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeVar, cast
from uuid import UUID

import anyio
from anyio.abc import TaskStatus
from prefect import State, get_client
from prefect.client.orchestration import PrefectClient
from prefect.context import FlowRunContext
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.input import Keyset, RunInput, keyset_from_paused_state
from prefect.logging import get_logger
from prefect.states import Paused
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect.utilities.engine import propose_state_sync

__all__ = ["FALLBACK_POLL_S", "STREAMLESS_POLL_S", "pause_for_input"]

FALLBACK_POLL_S = 10.0
"""How often a paused run that listens to the event stream reads itself all the same."""

STREAMLESS_POLL_S = 1.0
"""How often a paused run reads itself when the server's event stream cannot be reached."""

# how long the event stream may take to connect before the run reads itself every second
_CONNECT_S = 5.0

# after an event, the run may not read as resumed yet: it is read again this soon, then later
_SETTLE_S = (0.05, 0.1, 0.2, 0.4)

FormT = TypeVar("FormT", bound=RunInput)


def pause_for_input(form: type[FormT], timeout_s: int, key: str) -> FormT | None:
    """Pause the current flow run until someone answers `form`; None when `timeout_s` passes.

    Args:
        form: the form the UI shows (a `RunInput`, with its initial data and description).
        timeout_s: how long the pause lasts before the server lets it expire.
        key: the pause's own key: a run that pauses again uses a new one.

    Raises:
        RuntimeError: outside a flow run, or when the server does not let the run pause.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("only a flow run can pause")
    run_id = context.flow_run.id
    proposed: State[Any] = Paused(timeout_seconds=timeout_s, reschedule=False, pause_key=key)
    keyset = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = {str(k): v for k, v in keyset.items()}
    with get_client(sync_client=True) as client:
        state = propose_state_sync(client=client, state=proposed, flow_run_id=run_id)
    if state.is_running():  # the server says this pause was answered already
        return _loaded(form, keyset)
    if not state.is_paused():
        raise RuntimeError(f"the run could not pause: the server set it {state.type.value}")
    form.save(keyset)  # the form the UI shows on the paused run
    resumed: bool = run_coro_as_sync(_resumed_within(run_id, timeout_s))
    return _loaded(form, keyset) if resumed else None


def _loaded(form: type[FormT], keyset: Keyset) -> FormT:
    """The answered form (`load` runs synchronously: no event loop runs in this thread)."""
    return cast(FormT, form.load(keyset))


class _Nudges:
    """What the listener tells the waiting loop: an event arrived; the stream is gone."""

    def __init__(self) -> None:
        self.arrived = anyio.Event()
        self.poll_s = STREAMLESS_POLL_S

    def nudge(self) -> None:
        self.arrived.set()

    async def wait(self, at_most_s: float) -> bool:
        """Wait for the next event, at most `at_most_s`; True when one arrived."""
        with anyio.move_on_after(at_most_s):
            await self.arrived.wait()
        arrived = self.arrived.is_set()
        if arrived:
            self.arrived = anyio.Event()
        return arrived


async def _resumed_within(run_id: UUID, timeout_s: float) -> bool:
    """Wait until the run is Running again (True) or `timeout_s` passes (False)."""
    deadline = anyio.current_time() + timeout_s
    nudges = _Nudges()
    async with get_client() as client, anyio.create_task_group() as group:
        # listening before the first read: a resume in between is not missed
        await group.start(_listen, run_id, nudges)
        resumed = await _read_until_resumed(client, run_id, deadline, nudges)
        group.cancel_scope.cancel()
    return resumed


async def _read_until_resumed(
    client: PrefectClient, run_id: UUID, deadline: float, nudges: _Nudges
) -> bool:
    """Read the run after each nudge (and every `nudges.poll_s`) until it is Running."""
    settle: Iterator[float] = iter(())
    read_at = -_SETTLE_S[0]
    while True:
        # a flood of events (anyone with API access can emit them) costs a read per 50 ms
        await anyio.sleep(max(0.0, read_at + _SETTLE_S[0] - anyio.current_time()))
        read_at = anyio.current_time()
        run = await client.read_flow_run(run_id)
        if run.state is not None and run.state.is_running():
            return True
        left = deadline - anyio.current_time()
        if left <= 0:
            return False
        if await nudges.wait(min(left, next(settle, nudges.poll_s))):
            settle = iter(_SETTLE_S)


async def _listen(
    run_id: UUID, nudges: _Nudges, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Nudge the waiting loop on each state change of the run the server streams."""
    states = EventFilter(
        event=EventNameFilter(prefix=["prefect.flow-run."]),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]),
    )
    started = False
    try:
        async with contextlib.AsyncExitStack() as stack:
            # a proxy that holds the websocket's upgrade must not hold the first read
            with anyio.fail_after(_CONNECT_S):
                subscriber = get_events_subscriber(filter=states, reconnection_attempts=3)
                events = await stack.enter_async_context(subscriber)
            nudges.poll_s = FALLBACK_POLL_S
            task_status.started()
            started = True
            async for _ in events:
                nudges.nudge()
    except Exception as exc:  # no stream (or it ended): the loop reads the run every second
        get_logger(__name__).debug("no event stream while paused (%s): reading the run", exc)
    nudges.poll_s = STREAMLESS_POLL_S
    nudges.nudge()
    if not started:
        task_status.started()
