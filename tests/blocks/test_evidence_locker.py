"""The evidence locker against a real SeaweedFS."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from stack_support import S3Server, new_bucket

from blocks.evidence_locker import EvidenceLocker
from changeflow.canonical import digest
from changeflow.errors import BadInput, IntegrityError
from changeflow.evidence import make_evidence
from changeflow.models import Asset, Evidence, InventoryEntry
from changeflow.ports import Verification
from changeflow.storage import Retention
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
    assert locker.bucket_status().object_lock is True


def test_tampered_evidence_and_attachments_are_named(unlocked_locker: EvidenceLocker) -> None:
    locker = unlocked_locker
    stored = locker.put_evidence(_evidence(locker), [COMMIT])
    assert locker.verify_evidence([stored.id]) == Verification(checked=2)
    # overwrite both out of band, as someone with plain write access could on an unlocked bucket
    client = locker.client
    client.put_object(
        Bucket=locker.bucket, Key=locker.layout.attachment(stored.attachments[0].hash), Body=b"x"
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
    broken = locker.verify_evidence([stored.id]).broken
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
    assert locker.verify_summary(url, sha) == Verification(checked=3)
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
    with pytest.raises(BadInput, match="SignatureDoesNotMatch"):
        wrong.store_attachment_bytes(b"data")
    with pytest.raises(BadInput, match="refused"):
        wrong.get_evidence("0" * 64)


def test_credentials_that_may_not_write_are_refused(s3_server, locker: EvidenceLocker) -> None:  # type: ignore[no-untyped-def]
    stored = locker.store_attachment_bytes(b"evidence of a passing build")
    auditor = EvidenceLocker(bucket=locker.bucket, credentials=s3_server.credentials(reader=True))
    assert auditor.verify_attachment(stored.hash) == stored.size  # reading is allowed
    with pytest.raises(BadInput, match=r"refused to .*AccessDenied .*not allowed to"):
        auditor.store_attachment_bytes(b"other bytes")
    assert locker._list("raw/attachments") == [locker.layout.attachment(stored.hash)]


def test_a_shared_client_serves_only_the_keys_it_was_made_with(
    s3_server, locker: EvidenceLocker
) -> None:  # type: ignore[no-untyped-def]
    # clients are shared per process (blocks/s3/objects.py): the right access key with a wrong
    # secret must not borrow the client the right secret made
    stored = locker.store_attachment_bytes(b"made with the right keys")
    guessed = EvidenceLocker(
        bucket=locker.bucket, credentials=s3_server.credentials(secret_key="a-guessed-secret")
    )
    assert guessed.client is not locker.client
    with pytest.raises(BadInput, match="refused"):
        guessed.store_attachment_bytes(b"written with a guessed secret")
    with pytest.raises(BadInput, match="refused"):
        guessed.get_attachment(stored.hash)
    # the same keys and store: one client, made once
    twin = EvidenceLocker(bucket=locker.bucket, credentials=s3_server.credentials())
    assert twin.client is locker.client
    assert locker._list("raw/attachments") == [locker.layout.attachment(stored.hash)]


def test_secret_key_is_not_printed(locker: EvidenceLocker) -> None:
    secret = locker.credentials.aws_secret_access_key.get_secret_value()
    assert secret not in repr(locker)
    assert secret not in str(locker.model_dump())


# -- broken links are named ----------------------------------------------------------------


def _entry(locker: EvidenceLocker, name: str, artifact: bytes) -> tuple[Asset, InventoryEntry]:
    stored = locker.store_attachment_bytes(artifact, name)
    asset = Asset.for_uri(f"artifact://{name}@{stored.hash}")
    entry = InventoryEntry(
        name=name, artifact=stored.url, version="1.0", type="file", sha256=stored.hash,
        repository_url="https://example.com/org/app", commit_sha="a" * 40, build_number="1",
        pipeline_run_id="ci-1", provenance=asset.uri,
    )  # fmt: skip
    return asset, entry


def test_overwritten_attachment_is_named_by_verify_summary(unlocked_locker: EvidenceLocker) -> None:
    locker = unlocked_locker
    record = locker.put_evidence(_evidence(locker), [COMMIT])
    summary = summarize(
        scope="deploy-x", environment="prod", region="us-south",
        assets={COMMIT.id: COMMIT.uri}, records=[record],
    )  # fmt: skip
    url, sha = locker.put_summary(summary)
    assert locker.verify_summary(url, sha) == Verification(checked=3)
    attachment = record.attachments[0].hash
    locker.client.put_object(
        Bucket=locker.bucket, Key=locker.layout.attachment(attachment), Body=b"<testsuite>forged"
    )
    broken = locker.verify_summary(url, sha).broken
    assert len(broken) == 1
    assert record.id in broken[0] and attachment in broken[0]
    assert "no longer matches" in broken[0]


def test_overwritten_evidence_is_named_by_verify_summary(unlocked_locker: EvidenceLocker) -> None:
    locker = unlocked_locker
    record = locker.put_evidence(_evidence(locker), [COMMIT])
    summary = summarize(
        scope="deploy-y", environment="prod", region="us-south",
        assets={COMMIT.id: COMMIT.uri}, records=[record],
    )  # fmt: skip
    url, sha = locker.put_summary(summary)
    forged = record.model_copy(
        update={"details": record.details.model_copy(update={"tool": "forged"})}
    )
    locker.client.put_object(
        Bucket=locker.bucket, Key=locker.evidence_key(record.id), Body=forged.to_json()
    )
    broken = locker.verify_summary(url, sha).broken
    assert broken == [f"evidence {record.id} does not hash to its id"]
    # unparseable is never a pass either
    locker.client.put_object(
        Bucket=locker.bucket, Key=locker.evidence_key(record.id), Body=b"not json"
    )
    broken = locker.verify_summary(url, sha).broken
    assert broken == [f"evidence {record.id} is not a valid record"]


def test_objects_deleted_out_of_band_are_named(unlocked_locker: EvidenceLocker) -> None:
    locker = unlocked_locker
    record = locker.put_evidence(_evidence(locker), [COMMIT])
    summary = summarize(
        scope="deploy-z", environment="prod", region="us-south",
        assets={COMMIT.id: COMMIT.uri}, records=[record],
    )  # fmt: skip
    url, sha = locker.put_summary(summary)
    attachment_key = locker.layout.attachment(record.attachments[0].hash)
    locker.client.delete_object(Bucket=locker.bucket, Key=attachment_key)
    broken = locker.verify_summary(url, sha).broken
    assert len(broken) == 1 and record.id in broken[0] and attachment_key in broken[0]
    assert "missing" in broken[0]
    locker.client.delete_object(Bucket=locker.bucket, Key=locker.evidence_key(record.id))
    broken = locker.verify_evidence([record.id]).broken
    assert broken == [f"{locker.url(locker.evidence_key(record.id))} is missing"]
    locker.client.delete_object(Bucket=locker.bucket, Key=locker.layout.summary("deploy-z"))
    assert locker.verify_summary(url, sha) == Verification(checked=1, broken=[f"{url} is missing"])


def test_verify_entries_names_entries_without_evidence(unlocked_locker: EvidenceLocker) -> None:
    locker = unlocked_locker
    with_evidence, entry_ok = _entry(locker, "app/wheel", b"wheel bytes")
    _, entry_bare = _entry(locker, "app/sdist", b"sdist bytes")
    record = make_evidence(
        evidence_type_id="com.ibm.unit_tests", result="success", tool="pytest", scope="ci-1",
        assets=[with_evidence], date=datetime(2026, 11, 1, tzinfo=UTC),
    )  # fmt: skip
    locker.put_evidence(record, [with_evidence])
    # an artifact stored in this locker is checked; one stored elsewhere is not its to check
    assert locker.holds_artifact(entry_ok.artifact)
    assert not locker.holds_artifact(f"s3://{locker.bucket}-other/{entry_ok.sha256}")
    found = locker.verify_entries([entry_ok, entry_bare])
    assert found.checked == 3  # two artifacts and one evidence record
    assert found.broken == [f"entry app/sdist: no evidence for {entry_bare.provenance}"]
    # the marker still lists the record, but the record itself is gone: named too
    locker.client.delete_object(Bucket=locker.bucket, Key=locker.evidence_key(record.id))
    broken = locker.verify_entries([entry_ok]).broken
    assert broken == [f"{locker.url(locker.evidence_key(record.id))} is missing"]
    # and so is an artifact overwritten behind the entry
    locker.client.put_object(
        Bucket=locker.bucket, Key=locker.layout.attachment(entry_ok.sha256), Body=b"other"
    )
    broken = locker.verify_entries([entry_ok]).broken
    assert f"entry app/wheel: artifact attachment {entry_ok.sha256} no longer matches" in broken[0]


# -- the bucket check ------------------------------------------------------------------------


def test_storage_check_passes_on_a_locked_bucket(locker: EvidenceLocker) -> None:
    check = locker.check_storage()
    assert check.versioned and check.locked and check.retention_ok and check.ok
    assert check.default_retention == Retention(mode="COMPLIANCE", days=1)
    assert check.probe is not None
    assert check.probe.mode == "COMPLIANCE" and check.probe.days == 1
    assert check.retention_days == 1 and check.required_days == 1
    # the probe is a real object the server keeps under the locker's retention
    head = locker.client.head_object(Bucket=locker.bucket, Key=check.probe.key)
    assert head["ObjectLockMode"] == "COMPLIANCE"


def test_storage_check_fails_when_retention_is_shorter(s3_server: S3Server) -> None:
    short = s3_server.locker(new_bucket(), retention_days=1)
    short.create_bucket()  # default rule: 1 day
    wants_more = s3_server.locker(short.bucket, retention_days=2)
    check = wants_more.check_storage()
    # the probe gets 2 days, but objects written without retention would get only 1
    assert check.probe is not None and check.default_retention is not None
    assert check.probe.days == 2 and check.default_retention.days == 1
    assert check.retention_days == 1
    assert check.versioned and check.locked
    assert not check.retention_ok and not check.ok
    governance = s3_server.locker(short.bucket, retention_days=1, retention_mode="GOVERNANCE")
    check = governance.check_storage()
    assert check.retention_mode == "GOVERNANCE" and check.ok
    strict = s3_server.locker(short.bucket, retention_days=1)
    assert strict.check_storage().ok


def test_storage_check_fails_on_an_unlocked_bucket(unlocked_locker: EvidenceLocker) -> None:
    check = unlocked_locker.check_storage()
    assert check.versioned is False and check.locked is False
    assert check.retention_days == 0 and check.probe is None
    assert not check.ok
    assert unlocked_locker._list("") == []  # no probe written where nothing is retained


def test_record_storage_check_turns_the_check_into_evidence(
    locker: EvidenceLocker, unlocked_locker: EvidenceLocker
) -> None:
    from tasks.evidence import record_storage_check

    pipeline = "changeflow-deploy/prod/r1"
    good = record_storage_check.fn(locker, "deploy-1", pipeline, [COMMIT])
    assert good.evidence_type_id == "com.ibm.immutable_storage"
    assert good.origin.pipeline_id == pipeline
    assert good.result.value == "success"
    assert locker.get_evidence(good.id) == good
    assert locker.evidence_ids(COMMIT.id) == [good.id]
    check = json.loads(locker.get_attachment(good.attachments[0].hash))
    assert check["ok"] is True and check["bucket"] == locker.bucket
    bad = record_storage_check.fn(unlocked_locker, "deploy-1", pipeline, [COMMIT])
    assert bad.result.value == "failure"
    assert json.loads(unlocked_locker.get_attachment(bad.attachments[0].hash))["ok"] is False
