"""Change request ids: `CHG` and seven digits, as ServiceNow numbers change requests; and
which CRs a listing asks for.

The git change-management repo allocates them in sequence; ServiceNow assigns them itself. Both
backends and the request forms check ids against the same pattern. Every backend lists the CRs
of one environment, or only the open ones, by the same rule (`listed`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from changeflow.errors import BadInput
from changeflow.names import validate_environment

if TYPE_CHECKING:
    from changeflow.models import ChangeRequest

__all__ = [
    "CHANGE_ID_PATTERN",
    "CLOSED_STATES",
    "change_number",
    "check_listing",
    "format_change_id",
    "is_change_id",
    "is_open",
    "listed",
]

CLOSED_STATES = frozenset({"closed", "cancelled"})
"""The states of a CR that is done with: every other state is open (review included)."""

CHANGE_ID_PATTERN = r"^CHG\d{7}$"
"""What a change request id looks like."""

_ID_RE = re.compile(r"^CHG(\d{7})$")
_MAX_NUMBER = 9_999_999


def format_change_id(number: int) -> str:
    """Return the change request id for a sequence number: `CHG` and 7 digits.

    Raises:
        ValueError: for a number outside 1..9999999.
    """
    if not 1 <= number <= _MAX_NUMBER:
        raise ValueError(f"change request number out of range: {number}")
    return f"CHG{number:07d}"


def change_number(change_id: str) -> int | None:
    """Return the sequence number of a change request id, or None when it is not one."""
    match = _ID_RE.match(change_id)
    return int(match[1]) if match else None


def is_change_id(text: str) -> bool:
    """Tell whether `text` is a change request id."""
    return _ID_RE.match(text) is not None


def is_open(cr: ChangeRequest) -> bool:
    """Tell whether a CR is still open: neither closed nor cancelled."""
    return cr.state.value not in CLOSED_STATES


def check_listing(environment: str | None) -> None:
    """Check the environment a listing asks for.

    Raises:
        BadInput: when it cannot be an environment's name.
    """
    if environment is not None:
        try:
            validate_environment(environment)
        except ValueError as exc:
            raise BadInput(str(exc)) from None


def listed(cr: ChangeRequest, environment: str | None, open_only: bool) -> bool:
    """Tell whether a listing for `environment` (None: every one), open CRs only or not,
    includes `cr`."""
    return environment in (None, cr.environment) and (is_open(cr) or not open_only)
