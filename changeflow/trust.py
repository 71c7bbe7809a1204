"""The trust file: which public key may sign what, and when.

A TOML file the worker's configuration names (`CHANGEFLOW_TRUST_FILE`); its sha256 goes into
every CR. Each key names the record kinds it may sign (evidence type ids, `provenance`, `vsa`)
and the window in which it was trusted, so after a rotation old records still verify against
the key that was trusted when they were signed:

```toml
[[keys]]
name = "ci-2025"
keyid = "89ff2816..."                 # securesystemslib keyid of the public key
public = "0c438c7b..."                # the ed25519 public key, hex
signs = ["com.ibm.unit_tests", "com.ibm.static_scan", "provenance"]
not_before = 2025-01-01T00:00:00Z
not_after = 2025-07-01T00:00:00Z      # optional: rotated out (or compromised) from then on
```
"""

from __future__ import annotations

import tomllib
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from changeflow.canonical import digest
from changeflow.errors import BadInput

__all__ = [
    "PROVENANCE",
    "VSA",
    "TrustPolicy",
    "TrustedKey",
    "load_trust",
    "render_trust",
    "trust_digest",
]

PROVENANCE = "provenance"
"""What a key signs when it signs a CI build's SLSA provenance."""

VSA = "vsa"
"""What a key signs when it signs a CR decision (a SLSA verification summary)."""


class TrustedKey(BaseModel):
    """One public key and what it may sign, from when until when."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    keyid: str = Field(pattern=r"^[0-9a-f]{64}$")
    public: str = Field(pattern=r"^[0-9a-f]{64}$", description="ed25519 public key, hex.")
    scheme: str = "ed25519"
    signs: list[str] = Field(min_length=1)
    not_before: datetime
    not_after: datetime | None = None

    @field_validator("not_before", "not_after")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # a window compared with record dates: both must carry a time zone
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone (write it with Z)")
        return value

    def trusted_at(self, when: datetime) -> bool:
        """Whether `when` falls in the key's window."""
        return self.not_before <= when and (self.not_after is None or when < self.not_after)


class TrustPolicy(BaseModel):
    """Every trusted key (a key may appear once per window, for rotation)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    keys: list[TrustedKey] = Field(default_factory=list)

    def signers_of(self, what: str) -> list[TrustedKey]:
        """The keys allowed to sign `what` in any window."""
        return [k for k in self.keys if what in k.signs]

    def judge(self, what: str, keyids: set[str], when: datetime) -> str | None:
        """Why signatures by `keyids` on a `what` made at `when` are not trusted; None if they are.

        Args:
            what: the kind of record (an evidence type id, `provenance`, `vsa`).
            keyids: the keys whose signatures verified.
            when: when the statement says it was made (signed, so the signer's word).
        """
        allowed = [k for k in self.signers_of(what) if k.keyid in keyids]
        if not keyids:
            return "no valid signature by a key the trust file names"
        if not allowed:
            return f"signed by {_names(self, keyids)}, which may not sign {what}"
        if not any(k.trusted_at(when) for k in allowed):
            return f"signed by {_names(self, keyids)} outside its trusted window ({when:%Y-%m-%d})"
        return None


def _names(policy: TrustPolicy, keyids: set[str]) -> str:
    known = {k.keyid: k.name for k in policy.keys}
    return ", ".join(sorted(known.get(k, k[:12]) for k in keyids))


def load_trust(data: bytes) -> TrustPolicy:
    """Parse a trust file.

    Raises:
        BadInput: when it is not TOML or not a trust file, on one line.
    """
    try:
        return TrustPolicy.model_validate(tomllib.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"trust file is not TOML: {' '.join(str(exc).split())}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(f"trust file: {where}: {first['msg']}") from None


def trust_digest(data: bytes) -> str:
    """The trust file's `sha256:<hex>`, as every CR records it."""
    return digest(data)


def render_trust(policy: TrustPolicy) -> str:
    """A trust file's TOML for `policy` (what `dev up` and the demo write)."""
    lines: list[str] = [f"version = {policy.version}", ""]
    for key in policy.keys:
        lines += [
            "[[keys]]",
            f'name = "{key.name}"',
            f'keyid = "{key.keyid}"',
            f'public = "{key.public}"',
            f'scheme = "{key.scheme}"',
            "signs = [" + ", ".join(f'"{s}"' for s in key.signs) + "]",
            f"not_before = {key.not_before.isoformat().replace('+00:00', 'Z')}",
        ]
        if key.not_after is not None:
            lines.append(f"not_after = {key.not_after.isoformat().replace('+00:00', 'Z')}")
        lines.append("")
    return "\n".join(lines)
