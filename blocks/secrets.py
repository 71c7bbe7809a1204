"""The values of the Prefect Secret blocks an environment hands its deploy commands.

Loaded only where a command is about to run, and never logged, written to a CR or returned
from a task: a secret's value crosses no task boundary.
"""

from __future__ import annotations

from collections.abc import Mapping

from prefect.blocks.system import Secret

from changeflow.errors import BadInput

__all__ = ["check_secrets", "load_secrets"]


def load_secrets(secrets: Mapping[str, str]) -> dict[str, str]:
    """Each variable with the value of the Secret block it names.

    Raises:
        BadInput: naming the block that is missing or does not hold a string.
    """
    values = {}
    for variable, name in secrets.items():
        try:
            block = Secret.load(name)
        except ValueError as exc:  # Prefect's "Unable to find block document named ..."
            raise BadInput(f"{variable}: no Secret block named {name!r}") from exc
        value = block.get() if isinstance(block, Secret) else None
        if not isinstance(value, str):
            raise BadInput(f"{variable}: the Secret block {name!r} does not hold a string")
        values[variable] = value
    return values


def check_secrets(secrets: Mapping[str, str]) -> None:
    """Check that every Secret block is there before anything is written.

    Raises:
        BadInput: naming the block that is missing.
    """
    load_secrets(secrets)
