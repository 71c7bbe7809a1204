"""The local cache of verified evidence records, against a real SeaweedFS (issue #15)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from blocks.evidence_locker import EvidenceLocker
from blocks.s3.cache import RecordCache
from changeflow.evidence import make_evidence
from changeflow.models import Asset, Evidence

ASSET = Asset.for_uri("https://example.com/org/app#" + "c" * 40)


def _stored(locker: EvidenceLocker, result: str = "success") -> Evidence:
    record = make_evidence(
        evidence_type_id="com.ibm.unit_tests", result=result, tool="pytest", scope="ci-1",
        assets=[ASSET], date=datetime(2026, 11, 1, tzinfo=UTC),
    )  # fmt: skip
    return locker.put_evidence(record, [ASSET])


def _cached_file(root: Path, evidence_id: str) -> Path:
    found = list(root.rglob(f"{evidence_id}.json"))
    assert len(found) == 1
    return found[0]


def test_summary_reads_a_stored_record_from_the_cache(
    locker: EvidenceLocker, tmp_path: Path
) -> None:
    locker.use_record_cache(tmp_path)
    stored = _stored(locker)
    assert _cached_file(tmp_path, stored.id).read_bytes() == stored.to_json()
    assert locker.evidence_for_assets([ASSET.id]) == {ASSET.id: [stored]}


def test_a_tampered_cache_entry_is_dropped_and_the_store_read(
    locker: EvidenceLocker, tmp_path: Path
) -> None:
    # the attack: someone with the worker's disk turns a failure into a success in the cache
    locker.use_record_cache(tmp_path)
    stored = _stored(locker, result="failure")
    file = _cached_file(tmp_path, stored.id)
    file.write_bytes(stored.to_json().replace(b'"failure"', b'"success"'))
    found = locker.find_evidence([ASSET.id])
    assert [e.details.result.value for e in found.records] == ["failure"]
    # refused, then replaced by the record the store holds, which re-hashes
    assert file.read_bytes() == stored.to_json()


def test_a_record_cached_for_one_bucket_does_not_stand_in_for_another(
    locker: EvidenceLocker, tmp_path: Path
) -> None:
    locker.use_record_cache(tmp_path)
    stored = _stored(locker)
    other = RecordCache(tmp_path, "another endpoint\nanother-bucket\n")
    assert other.get(stored.id) is None
    assert RecordCache(tmp_path, "x").get("../../etc/passwd") is None
