"""Flows the CLI calls in-process send no heartbeat; runs started elsewhere keep it (#15)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    get_current_settings,
    temporary_settings,
)

from cli.in_process import for_command


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
