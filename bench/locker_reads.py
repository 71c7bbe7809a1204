"""The summary cases of `bench/locker.py`: filling a locker by raw PUTs, reading a summary
through the locker (warm or cold) and the raw floor of a cold read."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from blocks.evidence_locker import EvidenceLocker
from changeflow.evidence import make_evidence
from changeflow.models import Asset
from changeflow.summary import summarize

__all__ = ["_fill", "_summary", "_summary_raw"]

CONCURRENCY = 16


def _asset(tag: str, i: int) -> Asset:
    return Asset.for_uri(
        f"artifact://bench-{tag}-{i}@sha256:{hashlib.sha256(f'{tag}{i}'.encode()).hexdigest()}"
    )


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- summary --------------------------------------------------------------------------------


def _fill(locker: EvidenceLocker, filer: str, assets: int, per_asset: int, tag: str) -> list[str]:
    """Valid records and their markers, by raw concurrent PUTs; the asset ids.

    The PUTs go to SeaweedFS's filer, the store under its S3 gateway, which takes them about
    twice as fast as signed S3 PUTs: filling is not what is measured, reading is.
    """
    start = datetime(2026, 1, 1, tzinfo=UTC)
    base = f"{filer}/buckets/{locker.bucket}"

    with httpx.Client(limits=httpx.Limits(max_connections=2 * CONCURRENCY), timeout=60) as http:

        def put(key: str, body: bytes) -> None:
            http.put(f"{base}/{key}", content=body).raise_for_status()

        def one(a: int) -> None:
            asset = _asset(tag, a)
            for k in range(per_asset):
                record = make_evidence(
                    evidence_type_id=f"com.ibm.check_{k % 5}", result="success", tool="bench",
                    scope=f"ci-{tag}-{a}", assets=[asset], date=start + timedelta(minutes=k),
                )  # fmt: skip
                put(locker.layout.evidence(record.id), record.to_json())
                put(locker.layout.marker(asset.id, record.id), b"")

        with ThreadPoolExecutor(2 * CONCURRENCY) as pool:
            list(pool.map(one, range(assets)))
    return [_asset(tag, a).id for a in range(assets)]


def _summary(locker: EvidenceLocker, asset_ids: list[str], tag: str, cold: Path | None) -> float:
    """One summary's read; `cold`: the locker's record cache, emptied first (a cold read)."""
    assets = {aid: f"artifact://{aid}" for aid in asset_ids}
    if cold is not None:
        shutil.rmtree(cold, ignore_errors=True)

    def run() -> None:
        found = locker.evidence_for_assets(asset_ids)
        records = {e.id: e for rs in found.values() for e in rs}.values()
        assert sum(len(rs) for rs in found.values()) == len(asset_ids) * 10
        summarize(scope=tag, environment="prod", region="r", assets=assets, records=records)

    return _timed(run)


def _summary_raw(locker: EvidenceLocker, asset_ids: list[str]) -> float:
    """The floor of a cold read: one raw LIST per asset, then one raw GET per record, by the
    same 16 threads through boto3, with no parsing and no hashing."""
    client, layout = locker.client, locker.layout

    def listed(aid: str) -> list[str]:
        found = client.list_objects_v2(Bucket=locker.bucket, Prefix=layout.markers(aid))
        return [o["Key"].rsplit("/", 1)[1] for o in found.get("Contents", [])]

    def get(eid: str) -> bytes:
        return bytes(
            client.get_object(Bucket=locker.bucket, Key=layout.evidence(eid))["Body"].read()
        )

    def run() -> None:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            ids = sorted({e for found in pool.map(listed, asset_ids) for e in found})
            assert len(ids) == len(asset_ids) * 10
            list(pool.map(get, ids))

    return _timed(run)
