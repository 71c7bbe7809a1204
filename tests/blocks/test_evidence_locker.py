"""The evidence locker against a real SeaweedFS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from blocks.evidence_locker import EvidenceLocker
from changeflow.canonical import digest
from changeflow.errors import IntegrityError
from changeflow.evidence import make_evidence
from changeflow.models import Asset, Evidence
from changeflow.summary import summarize

COMMIT = Asset.for_uri("https://example.com/org/app#" + "a" * 40)


def _evidence(locker: EvidenceLocker, result: str = "success", day: int = 1) -> Evidence:
    attachment = locker.store_attachment_bytes(b"<testsuite/>", "junit.xml")
    return make_evidence(
        evidence_type_id="com.ibm.unit_tests",
        result=result,
        tool="pytest",
        scope="ci-1",
        assets=[COMMIT],
        attachments=[attachment],
        date=datetime(2026, 11, day, tzinfo=UTC),
    )


def test_evidence_round_trip_verifies_hashes(locker: EvidenceLocker) -> None:
    stored = locker.put_evidence(_evidence(locker), [COMMIT])
    again = locker.get_evidence(stored.id)
    assert again == stored
    assert again.computed_id() == stored.id
    assert locker.get_attachment(stored.attachments[0].hash) == b"<testsuite/>"
    assert locker.evidence_ids(COMMIT.id) == [stored.id]


def test_writing_the_same_evidence_twice_is_a_no_op(locker: EvidenceLocker) -> None:
    first = locker.put_evidence(_evidence(locker), [COMMIT])
    second = locker.put_evidence(_evidence(locker), [COMMIT])
    assert first.id == second.id
    keys = locker._list(locker.key("raw/evidences"))
    assert len(keys) == 1
    assert locker.evidence_ids(COMMIT.id) == [first.id]


def test_objects_carry_retention_and_cannot_be_overwritten(locker: EvidenceLocker) -> None:
    stored = locker.put_evidence(_evidence(locker), [COMMIT])
    head = locker.client.head_object(Bucket=locker.bucket, Key=locker.evidence_key(stored.id))
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC)
    with pytest.raises(ClientError):
        # write-once: a conditional put of other bytes is refused by the server itself
        locker.client.put_object(
            Bucket=locker.bucket, Key=locker.evidence_key(stored.id), Body=b"{}", IfNoneMatch="*"
        )
    assert locker.bucket_status()["object_lock"] is True


def test_tampered_evidence_and_attachments_are_named(unlocked_locker: EvidenceLocker) -> None:
    locker = unlocked_locker
    stored = locker.put_evidence(_evidence(locker), [COMMIT])
    assert locker.verify_evidence([stored.id]) == (2, [])
    # overwrite both out of band, as someone with plain write access could on an unlocked bucket
    client = locker.client
    client.put_object(
        Bucket=locker.bucket, Key=locker.attachment_key(stored.attachments[0].hash), Body=b"x"
    )
    with pytest.raises(IntegrityError, match="no longer matches"):
        locker.get_attachment(stored.attachments[0].hash)
    forged = stored.model_copy(
        update={"details": stored.details.model_copy(update={"tool": "forged"})}
    )
    client.put_object(
        Bucket=locker.bucket, Key=locker.evidence_key(stored.id), Body=forged.to_json()
    )
    with pytest.raises(IntegrityError, match="does not hash"):
        locker.get_evidence(stored.id)
    _, broken = locker.verify_evidence([stored.id])
    assert broken and "does not hash" in broken[0]


def test_summary_is_stored_once_and_verified(locker: EvidenceLocker) -> None:
    record = locker.put_evidence(_evidence(locker), [COMMIT])
    summary = summarize(
        scope="deploy-1", environment="prod", region="us-south",
        assets={COMMIT.id: COMMIT.uri}, records=[record],
    )  # fmt: skip
    url, sha = locker.put_summary(summary)
    assert sha == digest(summary.to_json())
    assert locker.get_summary(url, sha) == summary
    assert locker.verify_summary(url, sha) == (3, [])
    with pytest.raises(IntegrityError):
        locker.get_summary(url, "sha256:" + "0" * 64)


def test_latest_evidence_is_read_per_asset(locker: EvidenceLocker) -> None:
    old = locker.put_evidence(_evidence(locker, "failure", day=1), [COMMIT])
    new = locker.put_evidence(_evidence(locker, "success", day=2), [COMMIT])
    found = locker.evidence_for_assets([COMMIT.id])
    assert {e.id for e in found[COMMIT.id]} == {old.id, new.id}
    summary = summarize(
        scope="d", environment="e", region="r", assets={COMMIT.id: COMMIT.uri},
        records=found[COMMIT.id],
    )  # fmt: skip
    assert [i.evidence_id for i in summary.evidence] == [new.id]


def test_wrong_credentials_are_refused(s3_server, locker: EvidenceLocker) -> None:  # type: ignore[no-untyped-def]
    wrong = EvidenceLocker(bucket=locker.bucket, credentials=s3_server.credentials("not-the-key"))
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        wrong.store_attachment_bytes(b"data")


def test_secret_key_is_not_printed(locker: EvidenceLocker) -> None:
    secret = locker.credentials.aws_secret_access_key.get_secret_value()
    assert secret not in repr(locker)
    assert secret not in str(locker.model_dump())
