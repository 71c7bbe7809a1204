"""Signed DSSE envelopes in the locker: with each evidence record, per build, per decision.

An evidence record's envelope travels in the record's own object, as its user metadata
(`x-amz-meta-dsse`, the envelope's bytes in base64), when it fits S3's 2 KB of metadata: the
record and its signature are then one PUT and one locked version, and neither can be written,
hidden or replaced without the other. An envelope too big for that (a record about many assets,
a long list of failed tests) is stored beside the record first, at `envelope.json`; so is one
signed for a record stored before. Everything is written once like every other object and read
back as bytes, which the caller opens and judges (`blocks.signing`,
`changeflow.evidence_trust`): a record with no envelope is an unsigned record.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from blocks.s3.layout import Layout
from blocks.s3.objects import S3Objects
from changeflow.canonical import digest
from changeflow.errors import IntegrityError

__all__ = ["Envelopes", "envelope_in", "inline_envelope"]

_DSSE = "application/vnd.dsse.envelope.v1+json"
_METADATA = "dsse"
# S3 allows 2 KB of user metadata per object, keys and values together; base64 takes 4/3
INLINE_MAX = (2048 - len(_METADATA)) * 3 // 4


def inline_envelope(envelope: bytes | None) -> dict[str, str] | None:
    """The user metadata that carries `envelope` in its record's object (None: too big, or none)."""
    if envelope is None or len(envelope) > INLINE_MAX:
        return None
    return {_METADATA: base64.b64encode(envelope).decode()}


def envelope_in(head: dict[str, Any] | None) -> bytes | None:
    """The envelope a record's object carries in its metadata (a HEAD's answer), or None."""
    value = ((head or {}).get("Metadata") or {}).get(_METADATA)
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return b""  # present and unreadable: judged as a broken signature, never as unsigned


@dataclass(frozen=True)
class Envelopes:
    """The envelopes of one locker.

    Attributes:
        objects: the bucket's objects.
        layout: where each envelope lives.
    """

    objects: S3Objects
    layout: Layout

    def put_evidence_envelope(self, evidence_id: str, envelope: bytes) -> None:
        """Store a record's envelope beside it: one too big to travel in the record's metadata
        (then before the record: never a record that looks signed later), or one signed for a
        record stored before."""
        self.objects.put_once(
            self.layout.evidence_envelope(evidence_id), envelope, content_type=_DSSE
        )

    def get_evidence_envelope(self, evidence_id: str) -> bytes | None:
        """A record's envelope, or None when it has none: the one its object carries, else the
        one beside it (one that anyone with the bucket's keys could add later counts only for a
        record that carries none)."""
        carried = envelope_in(self.objects.head(self.layout.evidence(evidence_id)))
        if carried is not None:
            return carried
        try:
            return self.objects.get(self.layout.evidence_envelope(evidence_id))
        except IntegrityError:  # missing: an unsigned record
            return None

    def put_provenance(self, run_id: str, envelope: bytes) -> str:
        """Store one provenance envelope of a build; its `sha256:<hex>`."""
        hash_ = digest(envelope)
        self.objects.put_once(self.layout.provenance(run_id, hash_), envelope, content_type=_DSSE)
        return hash_

    def get_provenance(self, run_id: str) -> list[bytes]:
        """Every provenance envelope stored for a build."""
        return [self.objects.get(k) for k in self.objects.list(self.layout.provenances(run_id))]

    def put_attestation(self, envelope: bytes) -> tuple[str, str]:
        """Store a signed decision once; its url and `sha256:<hex>`."""
        hash_ = digest(envelope)
        key = self.layout.attestation(hash_)
        self.objects.put_once(key, envelope, content_type=_DSSE)
        return self.objects.url(key), hash_

    def get_attestation(self, url: str, expected: str) -> bytes:
        """A signed decision by url, checked against the digest its CR recorded.

        Raises:
            IntegrityError: when it is elsewhere, missing or altered.
        """
        if not self.objects.holds(url):
            raise IntegrityError(f"attestation {url} is not in bucket {self.objects.bucket}")
        body = self.objects.get(self.objects.key_of(url))
        if digest(body) != expected:
            raise IntegrityError(f"attestation {url} does not match {expected}")
        return body
