"""A record and its signed envelope are stored together (issue #12, §1 and §8).

The contract runs on the real locker (SeaweedFS) and the in-memory store; the S3 tests below it
check where the envelope lands: in the record's own object when it fits S3's metadata, beside
it when it does not, and that an envelope planted beside a record that carries its own counts
for nothing.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from port_cases import EvidenceCase, open_evidence

from blocks.evidence_locker import EvidenceLocker
from blocks.s3.envelopes import INLINE_MAX
from changeflow.errors import IntegrityError
from changeflow.evidence import make_evidence
from changeflow.models import Asset, Evidence
from changeflow.ports import EvidenceStore

COMMIT = Asset.for_uri("https://example.com/org/app#" + "b" * 40)
SMALL = b'{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[]}'
BIG = b'{"payload":"' + base64.b64encode(b"x" * (INLINE_MAX + 1)) + b'","signatures":[]}'


@pytest.fixture(params=["s3", "memory"])
def evidence(request: pytest.FixtureRequest) -> EvidenceCase:
    return open_evidence(request, locked=True)


def _record(store: EvidenceStore, scope: str) -> Evidence:
    attachment = store.store_attachment_bytes(b"<testsuite/>", "junit.xml")
    return make_evidence(
        evidence_type_id="com.ibm.unit_tests", result="success", tool="pytest", scope=scope,
        assets=[COMMIT], attachments=[attachment], date=datetime(2026, 11, 2, tzinfo=UTC),
    )  # fmt: skip


@pytest.mark.parametrize("envelope", [SMALL, BIG], ids=["fits-metadata", "too-big"])
def test_a_record_is_stored_with_its_envelope(evidence: EvidenceCase, envelope: bytes) -> None:
    store = evidence.store
    record = store.put_evidence(_record(store, "ci-7"), [COMMIT], envelope)
    assert store.get_evidence_envelope(record.id) == envelope
    assert store.get_evidence(record.id) == record
    # a rerun stores the same record with the same envelope: nothing changes
    assert store.put_evidence(record, [COMMIT], envelope) == record
    assert store.get_evidence_envelope(record.id) == envelope
    with pytest.raises(IntegrityError):
        store.put_evidence(record, [COMMIT], envelope.replace(b"signatures", b"signaturez"))
    assert store.get_evidence_envelope(record.id) == envelope


def test_a_record_stored_unsigned_takes_its_envelope_beside_it(evidence: EvidenceCase) -> None:
    store = evidence.store
    record = store.put_evidence(_record(store, "ci-8"), [COMMIT])
    assert store.get_evidence_envelope(record.id) is None
    store.put_evidence(record, [COMMIT], SMALL)  # signed on a rerun
    assert store.get_evidence_envelope(record.id) == SMALL


def _keys(locker: EvidenceLocker, record: Evidence) -> list[str]:
    folder = locker.evidence_key(record.id).rsplit("/", 1)[0]
    listed = locker.client.list_objects_v2(Bucket=locker.bucket, Prefix=folder + "/")
    return sorted(o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", []))


def test_an_envelope_that_fits_is_one_object_with_its_record(locker: EvidenceLocker) -> None:
    record = locker.put_evidence(_record(locker, "ci-9"), [COMMIT], SMALL)
    assert _keys(locker, record) == ["index.json"]  # one PUT: the record carries it
    head = locker.client.head_object(Bucket=locker.bucket, Key=locker.evidence_key(record.id))
    assert base64.b64decode(head["Metadata"]["dsse"]) == SMALL
    assert head["ObjectLockMode"] == "COMPLIANCE"  # locked with the record's own version
    big = locker.put_evidence(_record(locker, "ci-10"), [COMMIT], BIG)
    assert _keys(locker, big) == ["envelope.json", "index.json"]


def test_an_envelope_planted_beside_a_signed_record_counts_for_nothing(
    locker: EvidenceLocker,
) -> None:
    # whoever holds the bucket's keys may add objects: one beside a record that carries its
    # own envelope is never read in its place
    record = locker.put_evidence(_record(locker, "ci-11"), [COMMIT], SMALL)
    planted = b'{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[1]}'
    locker.client.put_object(
        Bucket=locker.bucket, Key=locker.evidence_key(record.id).replace("index", "envelope"),
        Body=planted,
    )  # fmt: skip
    assert locker.get_evidence_envelope(record.id) == SMALL


def test_a_record_whose_metadata_is_rewritten_is_never_read_as_unsigned(
    unlocked_locker: EvidenceLocker,
) -> None:
    locker = unlocked_locker
    record = locker.put_evidence(_record(locker, "ci-12"), [COMMIT], SMALL)
    key = locker.evidence_key(record.id)
    body = locker.client.get_object(Bucket=locker.bucket, Key=key)["Body"].read()
    # a new version of the same record carrying garbage where the envelope was
    locker.client.put_object(Bucket=locker.bucket, Key=key, Body=body, Metadata={"dsse": "%%%"})
    assert locker.get_evidence(record.id) == record
    assert locker.get_evidence_envelope(record.id) == b""  # opened as malformed, not unsigned
