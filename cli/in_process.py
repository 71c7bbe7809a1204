"""Flows the command line calls in its own process run without Prefect's flow run heartbeat.

Prefect's heartbeat is how the server finds a run whose worker died (zombie detection): it
matters for runs a worker or `changeflow serve` starts from a deployment, and those keep it
(their processes read Prefect's settings, default every 180 s). A flow the CLI calls in-process
gains nothing from it: the run ends with the command, which reports its own failure, and the
engine joins the heartbeat thread when a run ends, a thread that sleeps in whole seconds, so
every call waited up to a second after its flow returned (bench/lifecycle.py measures both).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["FLOW_COMMANDS", "for_command", "in_process_flows", "one_api_client"]

# The commands that call flows in this process. `serve` is not one: its runs start in a
# runner's subprocesses, from deployments, and keep the heartbeat (so do a worker's).
FLOW_COMMANDS = frozenset({"promote", "ci", "deploy", "verify", "demo"})


@contextlib.contextmanager
def in_process_flows() -> Iterator[None]:
    """Within this block, flows called in this process send no heartbeat."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@contextlib.contextmanager
def one_api_client() -> Iterator[None]:
    """Within this block, the flows called in this thread share one Prefect API client.

    Without it each flow call makes its own: a TLS context and a version check against the
    server, about 50 ms of CPU and a round trip. A process that calls many flows (the demo, the
    test suite) keeps one; a command calling one flow gains nothing, and would start Prefect's
    temporary server even when its input is refused, so the CLI does not use it.
    """
    from prefect.context import SyncClientContext

    with SyncClientContext.get_or_create():
        yield


def for_command(argv: list[str]) -> contextlib.AbstractContextManager[None]:
    """`in_process_flows()` for a command that calls flows here, else nothing.

    Prefect is imported only for those commands, so `--help` and input checks stay fast.
    """
    command = next((a for a in argv if not a.startswith("-")), None)
    return in_process_flows() if command in FLOW_COMMANDS else contextlib.nullcontext()
