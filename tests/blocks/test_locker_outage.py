"""An unreachable store: bounded retries, one clear error, and nothing lost on a rerun."""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from prefect_aws import AwsCredentials
from prefect_aws.client_parameters import AwsClientParameters

from blocks.evidence_locker import EvidenceLocker
from changeflow.errors import StorageUnavailable
from changeflow.evidence import make_evidence
from changeflow.models import Asset, Evidence, InventoryEntry
from changeflow.summary import summarize
from cli.local_stack import free_port, seaweedfs_ports, start_seaweedfs, stop_process

HASH = "sha256:" + "c" * 64
ASSET = Asset.for_uri("https://example.com/org/app#" + "c" * 40)


def _locker(endpoint: str, bucket: str = "evidence", **kwargs: Any) -> EvidenceLocker:
    return EvidenceLocker(
        bucket=bucket,
        credentials=AwsCredentials(
            aws_access_key_id="changeflow",
            aws_secret_access_key=kwargs.pop("secret", "not-used"),
            region_name="us-east-1",
            aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
        ),
        **kwargs,
    )


@pytest.mark.timeout(240)
def test_every_public_method_says_the_store_is_unreachable(tmp_path: Path) -> None:
    # a loopback port nobody listens on: every connection is refused
    endpoint = f"http://127.0.0.1:{free_port()}"
    locker = _locker(endpoint, multipart_threshold=5 * 1024 * 1024)
    small = tmp_path / "small.txt"
    small.write_bytes(b"report")
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        out.truncate(6 * 1024 * 1024)
    record = make_evidence(
        evidence_type_id="com.ibm.unit_tests", result="success", tool="t", scope="ci-1",
        assets=[ASSET],
    )  # fmt: skip
    summary = summarize(
        scope="d", environment="e", region="r", assets={ASSET.id: ASSET.uri}, records=[record]
    )
    entry = InventoryEntry(
        name="app/wheel", artifact="s3://evidence/k", version="1", type="file", sha256=HASH,
        repository_url="https://example.com/org/app", commit_sha="c" * 40, build_number="1",
        pipeline_run_id="ci-1", provenance=ASSET.uri,
    )  # fmt: skip
    calls: dict[str, Callable[[], object]] = {
        "store_attachment_bytes": lambda: locker.store_attachment_bytes(b"x"),
        "store_attachment": lambda: locker.store_attachment(small),
        "store_attachment (multipart)": lambda: locker.store_attachment(big),
        "get_attachment": lambda: locker.get_attachment(HASH),
        "verify_attachment": lambda: locker.verify_attachment(HASH),
        "download_attachment": lambda: locker.download_attachment(HASH, tmp_path / "out"),
        "put_asset": lambda: locker.put_asset(ASSET),
        "put_evidence": lambda: locker.put_evidence(record, [ASSET]),
        "get_evidence": lambda: locker.get_evidence("c" * 64),
        "evidence_ids": lambda: locker.evidence_ids(ASSET.id),
        "evidence_for_assets": lambda: locker.evidence_for_assets([ASSET.id]),
        "evidence_for_assets_ids": lambda: locker.evidence_for_assets_ids([ASSET.id]),
        "put_summary": lambda: locker.put_summary(summary),
        "get_summary": lambda: locker.get_summary("s3://evidence/raw/cd/d/summary.json", HASH),
        "verify_evidence": lambda: locker.verify_evidence(["c" * 64]),
        "verify_summary": lambda: locker.verify_summary("s3://evidence/x", HASH),
        "verify_entries": lambda: locker.verify_entries([entry]),
        "create_bucket": locker.create_bucket,
        "bucket_status": locker.bucket_status,
        "check_storage": locker.check_storage,
        "object_lock": lambda: locker.object_lock,
        "list": lambda: locker._list(""),
    }

    def outcome(call: Callable[[], object]) -> BaseException | None:
        try:
            call()
        except BaseException as exc:
            return exc
        return None

    # in parallel: each waits out botocore's bounded retries and backoff
    with ThreadPoolExecutor(len(calls)) as pool:
        results = dict(zip(calls, pool.map(outcome, calls.values()), strict=True))
    for name, exc in results.items():
        assert isinstance(exc, StorageUnavailable), f"{name}: {exc!r}"
        message = str(exc)
        assert "\n" not in message, name
        assert endpoint in message and "unreachable" in message, name
    assert not (tmp_path / "out").exists()


def _batch(n: int) -> list[tuple[bytes, Evidence, Asset]]:
    batch = []
    for i in range(n):
        asset = Asset.for_uri(f"artifact://app-{i}@sha256:{i:064x}")
        report = f"<testsuite name='run-{i}'/>".encode()
        batch.append((report, asset))
    return [
        (
            report,
            make_evidence(
                evidence_type_id="com.ibm.unit_tests", result="success", tool="pytest",
                scope="ci-batch", assets=[asset], date=datetime(2026, 11, 1, tzinfo=UTC),
                attachments=[],
            ),
            asset,
        )
        for report, asset in batch
    ]  # fmt: skip


def _write(locker: EvidenceLocker, batch: list[tuple[bytes, Evidence, Asset]]) -> list[str]:
    ids = []
    for report, draft, asset in batch:
        attachment = locker.store_attachment_bytes(report, "junit.xml")
        record = make_evidence(
            evidence_type_id=draft.evidence_type_id, result=draft.result, tool="pytest",
            scope="ci-batch", assets=[asset], attachments=[attachment], date=draft.date,
        )  # fmt: skip
        ids.append(locker.put_evidence(record, [asset]).id)
    return ids


@pytest.mark.timeout(280)
def test_a_store_killed_mid_batch_loses_nothing(tmp_path: Path) -> None:
    ports = seaweedfs_ports()
    secret = secrets.token_hex(20)
    data = tmp_path / "seaweedfs"
    process, endpoint = start_seaweedfs(data, "changeflow", secret, ports=ports)
    pids = [process.pid]
    try:
        bucket = "outage-" + secrets.token_hex(6)
        locker = _locker(endpoint, bucket, secret=secret, retention_days=1)
        locker.create_bucket()
        batch = _batch(150)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                _write(locker, batch)
            except BaseException as exc:
                failure.append(exc)

        writer = threading.Thread(target=run)
        writer.start()
        # kill the store (no goodbye: SIGKILL) once part of the batch is in
        prefix = locker.key("raw/evidences")
        deadline = time.monotonic() + 120
        while len(_raw_list(locker, prefix)) < 30 and writer.is_alive():
            assert time.monotonic() < deadline, "the batch never got going"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        writer.join(timeout=200)
        assert not writer.is_alive()
        assert failure and isinstance(failure[0], StorageUnavailable), failure
        assert "unreachable" in str(failure[0])

        process, endpoint2 = start_seaweedfs(data, "changeflow", secret, ports=ports)
        pids.append(process.pid)
        assert endpoint2 == endpoint
        rerun = _locker(endpoint, bucket, secret=secret, retention_days=1)
        _wait_until_it_serves_what_it_held(rerun)
        ids = _write(rerun, batch)
        assert len(set(ids)) == len(batch)

        # every record exactly once: one version per key, nothing else under the prefix
        versions = _versions(rerun, rerun.key("raw/evidences"))
        assert sorted(versions) == sorted(rerun.evidence_key(i) for i in ids)
        assert all(count == 1 for count in versions.values()), versions
        for (_, _, asset), evidence_id in zip(batch, ids, strict=True):
            assert rerun.evidence_ids(asset.id) == [evidence_id]
        found = rerun.verify_evidence(ids)
        assert found.broken == [] and found.checked == 2 * len(batch)
        attachments = _versions(rerun, rerun.key("raw/attachments"))
        assert len(attachments) == len(batch) and set(attachments.values()) == {1}
    finally:
        for pid in pids:
            stop_process(pid)


def _wait_until_it_serves_what_it_held(locker: EvidenceLocker) -> None:
    """A restarted store answers before its volumes are back (500 on reads for a few seconds);
    the rerun is what an operator starts once the store serves again."""
    deadline = time.monotonic() + 90
    while True:
        try:
            keys = locker._list(locker.key("raw/attachments"))
            locker.client.get_object(Bucket=locker.bucket, Key=keys[0])["Body"].read()
            return
        except (StorageUnavailable, ClientError, IndexError):
            assert time.monotonic() < deadline, "the restarted store never served its objects"
            time.sleep(0.5)


def _raw_list(locker: EvidenceLocker, prefix: str) -> list[str]:
    try:
        return locker._list(prefix)
    except StorageUnavailable:
        return []


def _versions(locker: EvidenceLocker, prefix: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    paginator = locker.client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=locker.bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts
