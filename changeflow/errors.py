"""Errors the CLI turns into exit codes."""

from __future__ import annotations

__all__ = [
    "BadInput",
    "IntegrityError",
    "NotReady",
    "ServiceTimeout",
    "StaleChange",
    "StorageUnavailable",
]


class BadInput(ValueError):
    """Input a user can fix: the CLI prints it on one line and exits 2."""


class IntegrityError(RuntimeError):
    """Stored data does not hash to what refers to it: tampered, overwritten or missing."""


class NotReady(RuntimeError):
    """The work ran and the answer is no (exit 1)."""


class StorageUnavailable(RuntimeError):
    """A storage service could not be reached after bounded retries; a rerun completes the work."""


class StaleChange(NotReady):
    """A record changed after the caller read it: the write was refused (exit 1).

    Another writer got there first (two people deciding one CR at once, say); the message says
    what the record holds now.
    """


class ServiceTimeout(StorageUnavailable):
    """A service accepted the connection but did not answer in time, after bounded retries.

    Not retried again by the tasks: the adapter already waited out its own bounded attempts.
    """
