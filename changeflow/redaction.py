"""Keeping credentials out of what people and logs see: URLs with credentials, secret values.

Pure functions: the adapters call `redact` on every message that may name a remote, and the
requests refuse a URL that carries credentials before it becomes a run's parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "CREDENTIALS_HELP",
    "URL_WITHOUT_CREDENTIALS",
    "has_credentials",
    "hide",
    "redact",
    "refuse_credentials",
]

_CREDENTIALS_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s]+@")
# a password in any URL's user part, or any user part at all in an http(s) URL (where a token
# often stands alone as the user); `ssh://git@host` and `git@host:path` name a user, not a secret
_PASSWORD = r"[A-Za-z][A-Za-z0-9+.\-]*://[^/@\s]*:[^/@\s]*@"
_HTTP_USER = r"[Hh][Tt][Tt][Pp][Ss]?://[^/@\s]+@"
URL_WITHOUT_CREDENTIALS = rf"^(?!\s*{_PASSWORD})(?!\s*{_HTTP_USER})"
"""A JSON Schema `pattern` (ECMA and Python `re` alike) that a URL with credentials fails."""
_WITH_CREDENTIALS_RE = re.compile(rf"^\s*(?:{_PASSWORD}|{_HTTP_USER})")

CREDENTIALS_HELP = (
    "configure a git credential helper on the worker instead (README, Security: git credentials)"
)
"""Where a refusal of a URL with credentials points the user."""


def redact(text: str) -> str:
    """Hide credentials embedded in URLs (`https://user:token@host` → `https://***@host`)."""
    return _CREDENTIALS_RE.sub(r"\g<scheme>***@", text)


def has_credentials(url: str) -> bool:
    """Tell whether a URL carries credentials: a password, or any user in an http(s) URL."""
    return bool(_WITH_CREDENTIALS_RE.match(url))


def refuse_credentials(url: str) -> str:
    """A field check: `url` unchanged, or refused when it carries credentials.

    Raises:
        ValueError: naming the URL with its credentials hidden, and the way to do without.
    """
    if has_credentials(url):
        raise ValueError(f"{redact(url)} carries credentials: {CREDENTIALS_HELP}")
    return url


def hide(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value in `text` with `***`, and redact URLs.

    For what a command printed: it may echo a secret it was given.
    """
    # longest first, so a secret that contains another is hidden whole
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return redact(text)
