"""The CLI's own deploy command and environments file, for the deploy runs of its process.

A deployment run takes its deploy command and its environments file (with the policy that
judges it) from the worker's configuration, `CHANGEFLOW_ENVIRONMENTS`, never from its
parameters: whoever may start a run through the Prefect UI or API does not choose what the worker
executes. `changeflow deploy --command/--environments` is for local use: the CLI runs the flow
in its own process, so it installs its choice here for that process's runs, the way
`blocks.stores.use_stores` installs stores. Nothing that starts a run through the API reaches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["LocalDeployment", "local_deployment", "use_local_deployment"]


@dataclass(frozen=True)
class LocalDeployment:
    """A deploy command (empty: the environments file's) and an environments file (empty:
    `CHANGEFLOW_ENVIRONMENTS`) chosen by the local user of this process."""

    command: tuple[str, ...] = ()
    environments_file: str = ""


_in_use: list[LocalDeployment] = []


def local_deployment() -> LocalDeployment:
    """What this process's user chose; nothing chosen: the worker's configuration alone."""
    return _in_use[-1] if _in_use else LocalDeployment()


@contextmanager
def use_local_deployment(
    command: list[str] | None = None, environments_file: str = ""
) -> Iterator[LocalDeployment]:
    """Within the block, the deploy runs of this process use this command and file."""
    chosen = LocalDeployment(tuple(command or ()), environments_file)
    _in_use.append(chosen)
    try:
        yield chosen
    finally:
        _in_use.remove(chosen)
