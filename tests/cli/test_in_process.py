"""Flows the CLI calls in-process send no heartbeat; runs started elsewhere keep it (#15). Flows
called in one `one_api_client` block share one API client."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
from prefect import flow, get_client
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    get_current_settings,
    temporary_settings,
)

from cli.in_process import for_command, in_process_flows, one_api_client


@pytest.fixture(autouse=True)
def heartbeat_on() -> Iterator[None]:
    """Prefect's default, whatever the session's own flows run with (tests/conftest.py)."""
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 180}):
        yield


def _frequency() -> int | None:
    return get_current_settings().flows.heartbeat_frequency


def test_flow_commands_run_without_the_heartbeat() -> None:
    before = _frequency()
    assert before == 180
    for argv in (["deploy", "--environment", "prod"], ["demo"], ["--json", "ci"]):
        with for_command(argv):
            assert _frequency() is None
    assert _frequency() == before


def test_serve_and_reads_leave_the_heartbeat_alone() -> None:
    before = _frequency()
    for argv in (["serve"], ["cr", "list"], ["--help"], []):
        with for_command(argv):
            assert _frequency() == before


def _clients_of_two_flow_calls(around: Callable[[], AbstractContextManager[Any]]) -> list[Any]:
    """The API clients two flow calls used, called in a thread of their own (the session's
    thread holds a shared client already: tests/conftest.py)."""
    seen: list[Any] = []

    @flow
    def uses_the_api() -> None:
        seen.append(get_client(sync_client=True))

    def call_twice() -> None:
        with in_process_flows(), around():
            uses_the_api()
            uses_the_api()

    thread = threading.Thread(target=call_twice)
    thread.start()
    thread.join(timeout=120)
    assert len(seen) == 2
    return seen


def test_flows_called_in_one_block_share_one_api_client(prefect_api: str) -> None:
    first, second = _clients_of_two_flow_calls(one_api_client)
    assert first is second
    first, second = _clients_of_two_flow_calls(nullcontext)
    assert first is not second
