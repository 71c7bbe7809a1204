"""What a name that becomes a path, a ref or a URL may look like, checked where it is written
and again where it is read.

Environments and regions become branch and tag names (`<region>_<env>_latest`) and folder
names; an artifact's file name becomes a path on the worker; a repository URL is handed to git.
Each rule refuses what could reach outside its place: `..`, absolute paths, separators, control
and bidi-override characters, git's `ext::` transport, option-like values, unbounded lengths.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta

__all__ = [
    "ENVIRONMENT_PATTERN",
    "FUTURE_TOLERANCE",
    "MAX_ENTRY_NAME",
    "MAX_FILE_NAME",
    "MAX_NAME",
    "MAX_URI",
    "REGION_PATTERN",
    "check_aware_past",
    "has_hidden_characters",
    "validate_asset_uri",
    "validate_entry_name",
    "validate_environment",
    "validate_file_name",
    "validate_region",
    "validate_repo_url",
]

MAX_NAME = 63
"""Longest environment or region name (a DNS label's bound: they end up in hostnames too)."""
MAX_FILE_NAME = 200
MAX_ENTRY_NAME = 200
MAX_URI = 2048
"""Longest asset uri or repository URL: a uri is an identity, not a payload."""
FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far ahead of this clock a record's date may be (clocks drift a little)."""

# Letters and digits joined by single separators: no leading, trailing or doubled separator, so
# no `..`, no `.lock`-style suffix tricks, nothing git or a shell would read specially. No `_`
# in environments: labels are `<region>_<env>_latest`, and an `_` there would make the label
# of one environment read as a region of another.
ENVIRONMENT_PATTERN = r"^[A-Za-z0-9]+(?:[.\-][A-Za-z0-9]+)*$"
REGION_PATTERN = r"^[A-Za-z0-9]+(?:[._\-][A-Za-z0-9]+)*$"
_ENVIRONMENT_RE = re.compile(ENVIRONMENT_PATTERN)
_REGION_RE = re.compile(REGION_PATTERN)

# Unicode categories that draw nothing or reorder what follows: control (Cc), format (Cf: the
# bidi overrides and isolates, zero-width characters), line and paragraph separators,
# surrogates, private use and unassigned code points.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})

_URL_SCHEMES = ("https://", "http://", "ssh://", "file://")
# scp-like `[user@]host:path`, as git reads it: a host without "/" before the first ":"
_SCP_RE = re.compile(r"^(?:[A-Za-z0-9._\-]+@)?[A-Za-z0-9][A-Za-z0-9.\-]*:(?!//)[^\s]+$")


def has_hidden_characters(text: str) -> bool:
    """Tell whether `text` holds a control, format (bidi, zero-width) or unassigned character."""
    if text.isascii() and text.isprintable():
        return False  # the common case, without a lookup per character (rendering a CR)
    return any(unicodedata.category(c) in _HIDDEN for c in text)


def _place(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not value or len(value) > MAX_NAME or not pattern.fullmatch(value):
        joins = '".", "-" or "_"' if kind == "region" else '"." or "-"'
        raise ValueError(
            f"{kind} must be 1 to {MAX_NAME} letters and digits joined by single {joins}: {value!r}"
        )
    return value


def validate_environment(value: str) -> str:
    """Check an environment name (an inventory branch, part of every label).

    Raises:
        ValueError: naming what is wrong with `value`.
    """
    return _place("environment", value, _ENVIRONMENT_RE)


def validate_region(value: str) -> str:
    """Check a region name (part of a label and of the deploy's folder names).

    Raises:
        ValueError: naming what is wrong with `value`.
    """
    return _place("region", value, _REGION_RE)


def validate_entry_name(name: str) -> str:
    """Check an inventory entry name: a relative path, no `..`, not hidden, not Markdown.

    Raises:
        ValueError: naming what is wrong with `name`.
    """
    if not name or len(name) > MAX_ENTRY_NAME:
        raise ValueError(f"entry name must be 1 to {MAX_ENTRY_NAME} characters: {name!r}")
    if name.startswith("/") or "\\" in name:
        raise ValueError(f"entry name must be a relative path: {name!r}")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"entry name must not contain '..', '.' or empty parts: {name!r}")
    if any(part.startswith(".") for part in parts):
        raise ValueError(f"entry name must not be hidden: {name!r}")
    if name.endswith(".md"):
        raise ValueError(f"entry name must not end in .md: {name!r}")
    if has_hidden_characters(name):
        raise ValueError(f"entry name must not contain control or bidi characters: {name!r}")
    return name


def validate_file_name(name: str) -> str:
    """Check a plain file name, such as an artifact's: one path part that stays where it is put.

    Raises:
        ValueError: for separators, `.`/`..`, a leading dot, hidden characters, or an
            unbounded length.
    """
    if not name or len(name) > MAX_FILE_NAME:
        raise ValueError(f"file name must be 1 to {MAX_FILE_NAME} characters: {name!r}")
    if "/" in name or "\\" in name:
        raise ValueError(f"file name must not contain a path separator: {name!r}")
    if name.startswith("."):
        raise ValueError(f"file name must not start with '.': {name!r}")
    if has_hidden_characters(name):
        raise ValueError(f"file name must not contain control or bidi characters: {name!r}")
    return name


def validate_asset_uri(uri: str) -> str:
    """Check an asset uri: bounded, one line, no hidden characters.

    Raises:
        ValueError: naming what is wrong with `uri`.
    """
    if not uri or len(uri) > MAX_URI:
        raise ValueError(f"asset uri must be 1 to {MAX_URI} characters (got {len(uri)})")
    if has_hidden_characters(uri) or any(c.isspace() for c in uri):
        raise ValueError(f"asset uri must not contain spaces, control or bidi characters: {uri!r}")
    return uri


def validate_repo_url(url: str) -> str:
    """Check a git repository URL: https, http, ssh, `user@host:path`, file:// or a local path.

    git's `<transport>::<address>` form (`ext::` runs a command) and option-like values are
    refused, so the URL can only name a repository.

    Raises:
        ValueError: naming what is wrong with `url`.
    """
    if not url or len(url) > MAX_URI:
        raise ValueError(f"repository URL must be 1 to {MAX_URI} characters")
    if has_hidden_characters(url):
        raise ValueError(f"repository URL must not contain control or bidi characters: {url!r}")
    if url.startswith("-"):
        raise ValueError(f"repository URL must not start with '-': {url!r}")
    if url.startswith(_URL_SCHEMES):
        if any(c.isspace() for c in url):
            raise ValueError(f"repository URL must not contain spaces: {url!r}")
        return url
    if "::" in url or re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", url):
        raise ValueError(
            f"repository URL must use https://, http://, ssh://, file://, user@host:path or "
            f"a local path: {url!r}"
        )
    if _SCP_RE.fullmatch(url) or url.startswith(("/", "./", "../")):
        return url
    if ":" in url.split("/", 1)[0]:
        raise ValueError(f"not a repository URL git would read as a repository: {url!r}")
    return url  # a relative local path


def check_aware_past(when: datetime, now: datetime | None = None) -> datetime:
    """Check a record's date: with a time zone, and not more than a few minutes ahead.

    A naive date cannot be compared with the others, and a date far ahead would stay "the
    latest" forever, hiding every record written after it.

    Raises:
        ValueError: for a naive date, or one more than `FUTURE_TOLERANCE` ahead of `now`.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"date has no time zone: {when.isoformat()} (write e.g. ...Z or +02:00)")
    current = now or datetime.now(UTC)
    if when - current > FUTURE_TOLERANCE:
        raise ValueError(f"date is in the future: {when.isoformat()}")
    return when
