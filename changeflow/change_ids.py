"""Change request ids: `CHG` and seven digits, as ServiceNow numbers change requests.

The git change-management repo allocates them in sequence; ServiceNow assigns them itself. Both
backends and the request forms check ids against the same pattern.
"""

from __future__ import annotations

import re

__all__ = ["CHANGE_ID_PATTERN", "change_number", "format_change_id", "is_change_id"]

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
