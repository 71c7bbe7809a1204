"""Flows the CLI calls in-process send no heartbeat; runs started elsewhere keep it (#15)."""

from __future__ import annotations

from prefect.settings import get_current_settings

from cli.in_process import for_command


def _frequency() -> int | None:
    return get_current_settings().flows.heartbeat_frequency


def test_flow_commands_run_without_the_heartbeat() -> None:
    before = _frequency()
    assert before is not None  # Prefect's default: on
    for argv in (["deploy", "--environment", "prod"], ["demo"], ["--json", "ci"]):
        with for_command(argv):
            assert _frequency() is None
    assert _frequency() == before


def test_serve_and_reads_leave_the_heartbeat_alone() -> None:
    before = _frequency()
    for argv in (["serve"], ["cr", "list"], ["--help"], []):
        with for_command(argv):
            assert _frequency() == before
