"""Where each record lives in the evidence bucket (ARCHITECTURE.md, "Storage layouts").

```
raw/attachments/<h[:2]>/<h>/content            attachment bytes, h = sha256(bytes)
raw/evidences/<h[:2]>/<h>/index.json           evidence record, h = its id
raw/assets/<h[:2]>/<h>/index.json              asset record, h = asset id
raw/assets/<h[:2]>/<h>/evidences/<evidence-id> empty marker: one LIST finds an asset's evidence
raw/cd/<run-id>/summary.json                   evidence summary of a deployment run
raw/checks/<h[:2]>/<h>/probe.json              a storage check's retention probe
raw/evidences/<h[:2]>/<h>/envelope.json        the record's signed DSSE envelope, when too big to
                                               travel in index.json's metadata (x-amz-meta-dsse)
raw/provenance/<r[:2]>/<r>/<e>.json            a build's signed provenance, r = sha256(run id),
                                               e = sha256(envelope): a rerun adds one
raw/attestations/<h[:2]>/<h>/envelope.json     a signed CR decision (VSA), h = sha256(envelope)
```
"""

from __future__ import annotations

from dataclasses import dataclass

from changeflow.canonical import digest_hex, sha256_hex

__all__ = ["Layout"]


def _shard(h: str) -> str:
    # two hex characters first: keys spread over the store's partitions
    return f"{h[:2]}/{h}"


@dataclass(frozen=True)
class Layout:
    """The keys of one locker: each below its optional prefix."""

    prefix: str = ""

    def key(self, *parts: str) -> str:
        """The key of `parts` below the prefix."""
        return "/".join(p for p in (self.prefix.strip("/"), *parts) if p)

    def attachment(self, hash_: str) -> str:
        """Where an attachment's bytes live (`hash_` is `sha256:<hex>`)."""
        return self.key("raw/attachments", _shard(digest_hex(hash_)), "content")

    def evidence(self, evidence_id: str) -> str:
        """Where an evidence record lives."""
        return self.key("raw/evidences", _shard(evidence_id), "index.json")

    def asset(self, asset_id: str) -> str:
        """Where an asset record lives."""
        return self.key("raw/assets", _shard(asset_id), "index.json")

    def markers(self, asset_id: str) -> str:
        """The prefix below which an asset's evidence markers live."""
        return self.key("raw/assets", _shard(asset_id), "evidences") + "/"

    def marker(self, asset_id: str, evidence_id: str) -> str:
        """The empty object that links an asset to one evidence record."""
        return self.markers(asset_id) + evidence_id

    def summary(self, run_id: str) -> str:
        """Where a deployment run's evidence summary lives."""
        return self.key("raw/cd", run_id, "summary.json")

    def probe(self, hash_: str) -> str:
        """Where a storage check's probe lives (`hash_` is `sha256:<hex>` of its body)."""
        return self.key("raw/checks", _shard(digest_hex(hash_)), "probe.json")

    def evidence_envelope(self, evidence_id: str) -> str:
        """Where an evidence record's signed envelope lives, beside the record."""
        return self.key("raw/evidences", _shard(evidence_id), "envelope.json")

    def provenances(self, run_id: str) -> str:
        """The prefix below which a build's provenance envelopes live."""
        return self.key("raw/provenance", _shard(sha256_hex(run_id.encode("utf-8")))) + "/"

    def provenance(self, run_id: str, hash_: str) -> str:
        """Where one provenance envelope of a build lives (`hash_` is its `sha256:<hex>`)."""
        return self.provenances(run_id) + digest_hex(hash_) + ".json"

    def attestation(self, hash_: str) -> str:
        """Where a signed decision lives (`hash_` is the envelope's `sha256:<hex>`)."""
        return self.key("raw/attestations", _shard(digest_hex(hash_)), "envelope.json")
