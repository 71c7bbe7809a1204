"""Signed DSSE envelopes in the locker: beside each evidence record, per build, per decision.

Written once like every other object; read back as bytes, which the caller opens and judges
(`blocks.signing`, `changeflow.evidence_trust`): a missing envelope is an unsigned record.
"""

from __future__ import annotations

from dataclasses import dataclass

from blocks.s3.layout import Layout
from blocks.s3.objects import S3Objects
from changeflow.canonical import digest
from changeflow.errors import IntegrityError

__all__ = ["Envelopes"]

_DSSE = "application/vnd.dsse.envelope.v1+json"


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
        """Store a record's envelope beside it (before the record: never a record that looks
        signed later)."""
        self.objects.put_once(
            self.layout.evidence_envelope(evidence_id), envelope, content_type=_DSSE
        )

    def get_evidence_envelope(self, evidence_id: str) -> bytes | None:
        """A record's envelope, or None when it has none."""
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
