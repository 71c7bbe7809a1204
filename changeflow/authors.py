"""Who wrote the commit an artifact was built from, for separation of duties (issue 13).

CI records on each inventory entry the git author of its commit (`Name <email>`) and, where
the commit carries an SSH signature, the public key named in it. The deploy flow carries the
authors of the delta's entries onto the CR (`delta_authors`), and an approver who wrote one of
those commits may not approve it, matched by identity or by key (`changeflow.approvals`).

The key is read from the signature as git stored it (PROTOCOL.sshsig: the signer's public key
is the signature's first field); it is not verified here. A forged signature naming someone
else's key can only make that person unable to approve, never let an author through.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CommitAuthor", "authors_of", "parse_commit", "signer_key"]

_KEY_RE = re.compile(r"^(ssh-[a-z0-9-]+|ecdsa-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+={0,2}$")
_ARMOR = ("-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----")
_SIGNATURE_HEADERS = ("gpgsig", "gpgsig-sha256")


class CommitAuthor(BaseModel):
    """A commit's author as git records it, and the SSH key that signed the commit, if any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: str = Field(min_length=1, max_length=300, description="git's `Name <email>`.")
    key: str | None = Field(default=None, description='"ssh-ed25519 AAAA..." that signed it.')

    @field_validator("identity")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # shown in the CR and compared with approvers: one line, no control characters
        value = value.strip()
        if not value or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("a commit author is one line without control characters")
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.split()
        key = " ".join(parts[:2])  # a comment after the key is not part of it
        if not _KEY_RE.match(key):
            raise ValueError("an author key is an SSH public key: 'ssh-ed25519 AAAA...'")
        return key


def _string(blob: bytes, at: int) -> tuple[bytes, int]:
    """One SSH wire-format string (uint32 length, bytes) at `at`, and where the next starts."""
    if at + 4 > len(blob):
        raise ValueError("truncated")
    size = int.from_bytes(blob[at : at + 4], "big")
    end = at + 4 + size
    if end > len(blob):
        raise ValueError("truncated")
    return blob[at + 4 : end], end


def signer_key(armored: str) -> str | None:
    """The public key an armored SSH signature names (None for anything else: PGP, garbage)."""
    text = armored.strip()
    if not (text.startswith(_ARMOR[0]) and text.endswith(_ARMOR[1])):
        return None
    try:
        blob = base64.b64decode("".join(text[len(_ARMOR[0]) : -len(_ARMOR[1])].split()))
        if blob[:6] != b"SSHSIG":
            return None
        public, _ = _string(blob, 10)  # after the magic and the uint32 version
        key_type, _ = _string(public, 0)
        return f"{key_type.decode('ascii')} {base64.b64encode(public).decode('ascii')}"
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def parse_commit(raw: str) -> CommitAuthor | None:
    """The author (and SSH signing key) of a raw git commit object (`git cat-file commit`)."""
    headers: dict[str, str] = {}
    last = ""
    for line in raw.split("\n"):
        if not line:
            break  # the message follows the first blank line
        if line.startswith(" ") and last:  # a continuation (the signature's lines)
            headers[last] += "\n" + line[1:]
            continue
        last, _, value = line.partition(" ")
        headers.setdefault(last, value)
    author = headers.get("author", "")
    # `Name <email> 1700000000 +0000`: the identity without its time and zone
    identity = author.rsplit(" ", 2)[0] if author.count(" ") >= 2 else author
    if not identity.strip():
        return None
    key = next((signer_key(headers[h]) for h in _SIGNATURE_HEADERS if h in headers), None)
    return CommitAuthor(identity=identity, key=key)


def authors_of(found: Iterable[CommitAuthor | None]) -> list[CommitAuthor]:
    """The distinct authors among `found`, sorted (entries recorded without one are skipped)."""
    return sorted({a for a in found if a is not None}, key=lambda a: (a.identity, a.key or ""))
