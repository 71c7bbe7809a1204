"""Canonical JSON and sha256 digests: the basis of every id and every verification."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

__all__ = [
    "DIGEST_PATTERN",
    "canonical_json",
    "digest",
    "digest_hex",
    "is_digest",
    "sha256_hex",
]

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
_DIGEST_RE = re.compile(DIGEST_PATTERN)


def canonical_json(value: Any) -> bytes:
    """Serialize `value` as canonical JSON: sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Return the bare hex sha256 of `data` (the form ids and storage keys use)."""
    return hashlib.sha256(data).hexdigest()


def digest(data: bytes) -> str:
    """Return the sha256 of `data` written as a digest field: `sha256:<64 hex>`."""
    return f"sha256:{sha256_hex(data)}"


def is_digest(value: str) -> bool:
    """Tell whether `value` is a well-formed `sha256:<64 hex>` digest."""
    return bool(_DIGEST_RE.match(value))


def digest_hex(value: str) -> str:
    """Return the hex part of a `sha256:<hex>` digest.

    Raises:
        ValueError: when `value` is not a well-formed digest.
    """
    if not is_digest(value):
        raise ValueError(f"not a sha256 digest (want sha256:<64 lowercase hex>): {value!r}")
    return value.removeprefix("sha256:")
