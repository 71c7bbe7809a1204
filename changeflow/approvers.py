"""Who may approve an environment's changes, and how many approvals it takes.

An environment lists its approvers in the shape of SSH `allowed_signers`: an identity and its
public key. The rule is recorded on each CR when it is filed, so whoever reads the CR later
(`verify`, an auditor) checks its approvals against the rule it was decided under.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from changeflow.canonical import DIGEST_PATTERN, canonical_json

__all__ = [
    "APPROVAL_NAMESPACE",
    "Approval",
    "ApprovalRule",
    "Approver",
    "normalize_signature",
    "validate_identity",
]

APPROVAL_NAMESPACE = "changeflow-approval"
"""The SSH signature namespace of an approval: a git commit signature cannot pass for one."""

# an allowed_signers principal: no spaces, commas, quotes or the pattern characters `*?!`
_IDENTITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+@\-]*$")
_KEY_TYPES = ("ssh-ed25519",)


def validate_identity(value: str) -> str:
    """Check an approver's identity (an email address, say): one allowed_signers principal."""
    if len(value) > 200 or not _IDENTITY_RE.match(value):
        raise ValueError(f"{value!r} is not an approver identity (letters, digits and ._+@- only)")
    return value


class Approver(BaseModel):
    """One person who may approve: an identity and its SSH ed25519 public key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: str
    public_key: str = Field(description='"ssh-ed25519 AAAA...", as in allowed_signers.')

    _check_identity = field_validator("identity")(validate_identity)

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        parts = value.split()
        if len(parts) < 2 or parts[0] not in _KEY_TYPES:
            raise ValueError("public_key must be an ssh-ed25519 key: 'ssh-ed25519 AAAA...'")
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except ValueError as exc:
            raise ValueError("public_key: the key is not base64") from exc
        # the blob names its own type: a key pasted under another type's name is refused
        if not blob[4:].startswith(parts[0].encode()):
            raise ValueError("public_key: the key does not match its type")
        return f"{parts[0]} {parts[1]}"  # the comment is dropped: it is not part of the key


class ApprovalRule(BaseModel):
    """An environment's approval rule: its approvers, the quorum, whether unsigned ones count."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvers: list[Approver] = Field(default_factory=list)
    approvals_required: int = Field(default=1, ge=1)
    unsigned_approvals: bool | None = Field(
        default=None, description="Default: accepted when no approvers are listed."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ApprovalRule:
        identities = [a.identity for a in self.approvers]
        if len(set(identities)) != len(identities):
            raise ValueError("approvers: an identity is listed twice")
        keys = [a.public_key for a in self.approvers]
        if len(set(keys)) != len(keys):
            raise ValueError("approvers: a public key is listed twice")
        if self.approvers and self.approvals_required > len(self.approvers):
            raise ValueError(
                f"approvals_required is {self.approvals_required} but only "
                f"{len(self.approvers)} approvers are listed"
            )
        if self.unsigned_approvals is None:
            object.__setattr__(self, "unsigned_approvals", not self.approvers)
        return self

    @property
    def signed_required(self) -> bool:
        """Whether an approval must carry a signature that verifies."""
        return not self.unsigned_approvals

    def approver(self, identity: str) -> Approver | None:
        """The listed approver of this identity, if any."""
        return next((a for a in self.approvers if a.identity == identity), None)

    def allowed_signers(self) -> str:
        """The approvers as an SSH `allowed_signers` file, limited to the approval namespace."""
        return "".join(
            f'{a.identity} namespaces="{APPROVAL_NAMESPACE}" {a.public_key}\n'
            for a in self.approvers
        )


def _now() -> datetime:
    # to the second, as `changeflow.models.utcnow` (which imports this module)
    return datetime.now(UTC).replace(microsecond=0)


class Approval(BaseModel):
    """One decision on a CR: who, when, which way, and (signed) on which content."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    by: str = Field(min_length=1)
    date: datetime = Field(default_factory=_now)
    decision: Literal["approved", "rejected"]
    comment: str = ""
    automatic: bool = False
    # the CR content the decision was taken on, and the decider's SSH signature over the
    # statement naming it (`changeflow.approvals.text_to_sign`)
    cr_digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    signature: str | None = None
    # where a decision taken outside changeflow was read from (`servicenow`); None: changeflow's
    # own (the CLI, the run's form, the policy)
    source: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{0,39}$")

    def to_json(self) -> bytes:
        """Return the record as canonical JSON."""
        return canonical_json(self.model_dump(mode="json", exclude_none=True))


_ARMOR = ("-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----")
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def normalize_signature(text: str) -> str:
    """An armored SSH signature as `ssh-keygen` writes it, from one pasted in any wrapping.

    A form's one-line field loses the line breaks; the armor and the base64 are what count.

    Raises:
        ValueError: when the text is not an armored SSH signature.
    """
    body = "".join(text.split())
    head, tail = ("".join(a.split()) for a in _ARMOR)
    if not (body.startswith(head) and body.endswith(tail)):
        raise ValueError("not an SSH signature (-----BEGIN SSH SIGNATURE----- ...)")
    payload = body[len(head) : -len(tail)]
    if not payload or len(payload) > 4096 or not _BASE64_RE.match(payload):
        raise ValueError("not an SSH signature: its body is not base64")
    lines = [payload[i : i + 70] for i in range(0, len(payload), 70)]
    return "\n".join([_ARMOR[0], *lines, _ARMOR[1]]) + "\n"
