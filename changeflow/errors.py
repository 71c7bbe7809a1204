"""Errors the CLI turns into exit codes."""

from __future__ import annotations

__all__ = ["BadInput", "IntegrityError", "NotReady", "StorageUnavailable"]


class BadInput(ValueError):
    """Input a user can fix: the CLI prints it on one line and exits 2."""


class IntegrityError(RuntimeError):
    """Stored data does not hash to what refers to it: tampered, overwritten or missing."""


class NotReady(RuntimeError):
    """The work ran and the answer is no (exit 1)."""


class StorageUnavailable(RuntimeError):
    """A storage service could not be reached after bounded retries; a rerun completes the work."""
