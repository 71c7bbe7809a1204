"""Evidence records, asset records, the markers that link them, and deployment summaries.

An evidence record is written only once its attachments are stored and verified, and an asset's
marker only after the record, so a store that dies mid-run leaves nothing half-linked.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from blocks.s3.attachments import Attachments
from blocks.s3.cache import RecordCache
from blocks.s3.envelopes import Envelopes, envelope_in, inline_envelope
from blocks.s3.layout import Layout
from blocks.s3.objects import S3Objects
from changeflow.canonical import digest
from changeflow.errors import IntegrityError
from changeflow.models import Asset, Evidence
from changeflow.stored import stored_evidence, stored_summary
from changeflow.summary import EvidenceSummary, FoundEvidence, found_evidence, unreadable_because

__all__ = ["Records"]

_JSON = "application/json"


@dataclass(frozen=True)
class Records:
    """The records of one locker, beside its attachments.

    Attributes:
        attachments: the locker's attachments (and through them its objects and layout).
        concurrency: parallel requests for reads.
        cache: verified records kept on local disk by id, for summaries (None: no cache).
    """

    attachments: Attachments
    concurrency: int
    cache: RecordCache | None = None

    @property
    def objects(self) -> S3Objects:
        """The bucket's objects."""
        return self.attachments.objects

    @property
    def layout(self) -> Layout:
        """Where each record lives."""
        return self.attachments.layout

    def put_asset(self, asset: Asset) -> None:
        """Store an asset record; the first record for a uri is the one kept."""
        key = self.layout.asset(asset.id)
        if key in self.attachments.known:
            return
        try:
            self.objects.put_once(key, asset.to_json(), content_type=_JSON)
        except IntegrityError:
            # asset records are addressed by uri, not content: a later one may relate more
            if Asset.model_validate_json(self.objects.get(key)).uri != asset.uri:
                raise
        self.attachments.known.add(key)

    def put_evidence(
        self, evidence: Evidence, assets: Iterable[Asset] = (), envelope: bytes | None = None
    ) -> Evidence:
        """Store a sealed evidence record, its assets and the per-asset markers.

        Attachments must already be stored: the record is written only once they verify, and
        the markers only after the record, so a reader never finds a dangling link. A signed
        `envelope` travels in the record's own object when it fits (`blocks.s3.envelopes`),
        else it is stored beside it first.

        Raises:
            IntegrityError: when the record does not hash to its id, an attachment is not
                stored, or the record or its envelope is stored with other content.
        """
        sealed = evidence if evidence.id else evidence.sealed()
        if not sealed.is_sealed():
            raise IntegrityError(f"evidence {sealed.id} does not hash to its id")
        for attachment in sealed.attachments:
            self.attachments.check_stored(attachment)
        for asset in assets:
            self.put_asset(asset)
        carried = inline_envelope(envelope)
        envelopes = Envelopes(self.objects, self.layout)
        if envelope is not None and carried is None:
            envelopes.put_evidence_envelope(sealed.id, envelope)
        key = self.layout.evidence(sealed.id)
        written = self.objects.put_once(key, sealed.to_json(), content_type=_JSON, metadata=carried)
        if envelope is not None and carried is not None and not written:
            # the record was stored before (a rerun): its envelope is the one it carries
            stored = envelope_in(self.objects.head(key))
            if stored is None:
                envelopes.put_evidence_envelope(sealed.id, envelope)
            elif stored != envelope:
                raise IntegrityError(f"{self.objects.url(key)} carries another envelope")
        for aid in sealed.assets:
            self.objects.put_once(
                self.layout.marker(aid, sealed.id), b"", content_type="application/octet-stream"
            )
        if self.cache is not None:
            self.cache.put(sealed)  # the deploy on this machine reads it back without a GET
        return sealed

    def get_evidence(self, evidence_id: str) -> Evidence:
        """Read an evidence record and check it still hashes to its id."""
        raw = self.objects.get(self.layout.evidence(evidence_id))
        return stored_evidence(evidence_id, raw)

    def evidence_ids(self, asset_id: str) -> list[str]:
        """Ids of every evidence record about an asset: one LIST of its markers."""
        prefix = self.layout.markers(asset_id)
        return sorted(k.rsplit("/", 1)[1] for k in self.objects.list(prefix))

    def evidence_ids_for_assets(self, asset_ids: Iterable[str]) -> dict[str, list[str]]:
        """The evidence ids about each asset, listed with bounded concurrency."""
        ids = sorted(set(asset_ids))
        with ThreadPoolExecutor(self.concurrency) as pool:
            return dict(zip(ids, pool.map(self.evidence_ids, ids), strict=True))

    def evidence_for_assets(self, asset_ids: Iterable[str]) -> dict[str, list[Evidence]]:
        """Every evidence record about each asset, read with bounded concurrency."""
        listed = self.evidence_ids_for_assets(asset_ids)
        unique = sorted({e for found in listed.values() for e in found})
        with ThreadPoolExecutor(self.concurrency) as pool:
            records = dict(zip(unique, pool.map(self._cached, unique), strict=True))
        return {aid: [records[e] for e in found] for aid, found in listed.items()}

    def find_evidence(self, asset_ids: Iterable[str]) -> FoundEvidence:
        """Every record about the assets; one that cannot be read is reported with the reason."""
        listed = self.evidence_ids_for_assets(asset_ids)
        unique = sorted({e for found in listed.values() for e in found})
        with ThreadPoolExecutor(self.concurrency) as pool:
            read = dict(zip(unique, pool.map(self._read_or_why, unique), strict=True))
        return found_evidence(listed, read)

    def _read_or_why(self, evidence_id: str) -> Evidence | str:
        # only what is wrong with the record itself: an unreachable store still raises
        try:
            return self._cached(evidence_id)
        except IntegrityError as exc:
            return unreadable_because(exc)

    def _cached(self, evidence_id: str) -> Evidence:
        # a summary's read: from the local cache when it holds the record and it re-hashes
        if self.cache is None:
            return self.get_evidence(evidence_id)
        record = self.cache.get(evidence_id)
        if record is None:
            record = self.get_evidence(evidence_id)
            self.cache.put(record)
        return record

    def put_summary(self, summary: EvidenceSummary) -> tuple[str, str]:
        """Store a deployment run's summary once; its url and sha256 digest."""
        body = summary.to_json()
        key = self.layout.summary(summary.scope)
        self.objects.put_once(key, body, content_type=_JSON)
        return self.objects.url(key), digest(body)

    def get_summary(self, url: str, expected: str) -> EvidenceSummary:
        """Read a summary by url and check it against the digest its CR holds."""
        if not self.objects.holds(url):
            raise IntegrityError(f"summary {url} is not in bucket {self.objects.bucket}")
        body = self.objects.get(self.objects.key_of(url))
        return stored_summary(url, body, expected)
