"""Big attachments stream by multipart upload: hashed while streaming, whole or not at all."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from stack_support import S3Server, new_bucket

from blocks.evidence_locker import EvidenceLocker
from blocks.s3 import multipart
from changeflow.canonical import digest
from changeflow.errors import IntegrityError
from changeflow.evidence import make_evidence
from changeflow.models import Asset
from changeflow.ports import Verification

MIB = 1024 * 1024
COMMIT = Asset.for_uri("https://example.com/org/app#" + "b" * 40)


def _small_parts(s3_server: S3Server, bucket: str, **kwargs: object) -> EvidenceLocker:
    # 3 parts of 5 MiB (the S3 minimum) keep the multipart path fast enough for every run
    return s3_server.locker(
        bucket, multipart_threshold=10 * MIB, multipart_part_size=5 * MIB, **kwargs
    )


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.bin"
    path.write_bytes(os.urandom(15 * MIB - 123))
    return path


@pytest.fixture
def mp_locker(s3_server: S3Server) -> EvidenceLocker:
    locker = _small_parts(s3_server, new_bucket(), retention_days=1)
    locker.create_bucket()
    return locker


def test_a_big_file_is_stored_in_parts_under_its_hash(
    mp_locker: EvidenceLocker, big_file: Path, tmp_path: Path
) -> None:
    locker = mp_locker
    data = big_file.read_bytes()
    attachment = locker.store_attachment(big_file)
    assert attachment.hash == digest(data) and attachment.size == len(data)
    key = locker.layout.attachment(attachment.hash)
    head = locker.client.head_object(Bucket=locker.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["ChecksumSHA256"].endswith("-3")  # a multipart object of three parts
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert locker.verify_attachment(attachment.hash) == len(data)
    target = tmp_path / "out" / "artifact.bin"
    assert locker.download_attachment(attachment.hash, target) == len(data)
    assert target.read_bytes() == data
    assert locker.client.list_multipart_uploads(Bucket=locker.bucket).get("Uploads", []) == []


def test_storing_a_big_file_again_is_a_no_op(mp_locker: EvidenceLocker, big_file: Path) -> None:
    first = mp_locker.store_attachment(big_file)
    again = _small_parts_like(mp_locker).store_attachment(big_file)
    assert again == first
    versions = mp_locker.client.list_object_versions(
        Bucket=mp_locker.bucket, Prefix=mp_locker.layout.attachment(first.hash)
    )
    assert len(versions.get("Versions", [])) == 1
    # a record can refer to it: the composite checksum is accepted through the stored sha256
    fresh = _small_parts_like(mp_locker)
    record = make_evidence(
        evidence_type_id="com.ibm.sbom", result="success", tool="t", scope="ci-1",
        assets=[COMMIT], attachments=[first],
    )  # fmt: skip
    stored = fresh.put_evidence(record, [COMMIT])
    assert fresh.verify_evidence([stored.id]) == Verification(checked=2)


def _small_parts_like(locker: EvidenceLocker) -> EvidenceLocker:
    # a new instance: nothing remembered from the writes of the first
    return EvidenceLocker(
        bucket=locker.bucket,
        credentials=locker.credentials,
        retention_days=locker.retention_days,
        multipart_threshold=locker.multipart_threshold,
        multipart_part_size=locker.multipart_part_size,
    )


def test_the_same_file_in_other_parts_is_recognised(
    mp_locker: EvidenceLocker, big_file: Path
) -> None:
    first = mp_locker.store_attachment(big_file)
    other_parts = _small_parts_like(mp_locker).model_copy(update={"multipart_part_size": 6 * MIB})
    assert other_parts.store_attachment(big_file) == first


def test_other_bytes_at_the_key_are_refused(s3_server: S3Server, big_file: Path) -> None:
    locker = _small_parts(s3_server, new_bucket())
    locker.client.create_bucket(Bucket=locker.bucket)
    key = locker.layout.attachment(digest(big_file.read_bytes()))
    locker.client.put_object(Bucket=locker.bucket, Key=key, Body=b"squatter")
    with pytest.raises(IntegrityError, match="no longer matches"):
        locker.store_attachment(big_file)
    assert locker.client.list_multipart_uploads(Bucket=locker.bucket).get("Uploads", []) == []


def test_a_tampered_big_attachment_does_not_verify(s3_server: S3Server, big_file: Path) -> None:
    locker = _small_parts(s3_server, new_bucket())
    locker.client.create_bucket(Bucket=locker.bucket)
    attachment = locker.store_attachment(big_file)
    key = locker.layout.attachment(attachment.hash)
    locker.client.put_object(Bucket=locker.bucket, Key=key, Body=b"x" * (15 * MIB))
    with pytest.raises(IntegrityError, match="no longer matches"):
        locker.verify_attachment(attachment.hash)
    target = big_file.parent / "fetched.bin"
    with pytest.raises(IntegrityError):
        locker.download_attachment(attachment.hash, target)
    assert not target.exists()  # nothing half-verified is left behind
    assert list(big_file.parent.glob(".fetched.bin.*")) == []


def test_a_file_that_changes_while_stored_is_refused(
    mp_locker: EvidenceLocker, big_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = multipart.hash_file

    def hash_then_change(path: Path, part_bytes: int) -> tuple[str, list[str]]:
        result = original(path, part_bytes)
        with path.open("r+b") as stream:  # the file changes between the two passes
            stream.seek(6 * MIB)
            stream.write(b"changed")
        return result

    monkeypatch.setattr(multipart, "hash_file", hash_then_change)
    with pytest.raises(IntegrityError, match="changed while it was being stored"):
        mp_locker.store_attachment(big_file)
    assert mp_locker._list("") == []
    uploads = mp_locker.client.list_multipart_uploads(Bucket=mp_locker.bucket)
    assert uploads.get("Uploads", []) == []
