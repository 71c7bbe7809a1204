"""Benchmark the evidence locker against its own SeaweedFS, each case beside a raw baseline.

Three cases, each measured in the same run as a raw boto3 baseline so the ratios hold on any
machine:

- **ingest**: 2,000 evidence records, each with one 4 KiB attachment and its own asset, written
  through `EvidenceLocker` (store the attachment, seal the record, `put_evidence`) by 16 threads.
  The baseline does what a record costs at the least, with the same 16 threads and the same
  headers (`If-None-Match: *`, `ChecksumSHA256`, Object Lock retention): four PUTs per record
  (attachment, asset, evidence, marker) of bodies built beforehand. Best of five rounds, the
  ways taking turns to go first. With signing on, each record's envelope is signed (ed25519)
  and travels in the record's own PUT, as `record_report` does with a key: its ratio to the
  same raw baseline, and signing's share (its CPU on one thread against the signed wall time).
- **summary**: the evidence of a delta of 200 assets x 10 records, read with
  `evidence_for_assets` and summarized, first with the locker holding only those, then with it
  also holding 100,000 other records (10 per asset, filled by raw concurrent PUTs of valid
  records and markers). Read alternately from the two lockers, after one
  warm-up read each; best of five each.
- **attachment**: a child process stores a 2 GiB file (sparse, in a temporary folder) with
  `store_attachment`; its own peak RSS (VmHWM: getrusage's ru_maxrss of a child carries the
  parent's peak over fork and exec on Linux) beside a child uploading the same file with
  boto3's own `upload_file`, and a child that only imports and loads the locker (the floor:
  Prefect's import).

    uv run python bench/locker.py [--quick] [--records N] [--json]

`--quick` runs 200 records, a delta of 20 assets x 10 with 5,000 others, and 256 MiB.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blocks.evidence_locker import EvidenceLocker  # noqa: E402
from blocks.signing import StatementSigner, new_key  # noqa: E402
from changeflow.attestations import evidence_statement  # noqa: E402
from changeflow.evidence import make_evidence  # noqa: E402
from changeflow.models import Attachment  # noqa: E402
from cli.local_stack import seaweedfs_ports, start_seaweedfs, stop_process  # noqa: E402
from tasks.signing import sign_evidence  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from locker_reads import _asset, _fill, _summary, _summary_raw, _timed  # noqa: E402

__all__ = ["main"]

CONCURRENCY = 16
ROUNDS = 5  # of ingest: one run of the same work varies by a third on a shared 2-core machine
FULL = {"records": 2000, "assets": 200, "per_asset": 10, "others": 100_000, "size": 2 << 30}
QUICK = {"records": 200, "assets": 20, "per_asset": 10, "others": 5_000, "size": 256 << 20}
ACCESS = "bench"
MIB = 1024 * 1024


def _locker(endpoint: str, secret: str, bucket: str, **kwargs: Any) -> EvidenceLocker:
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters

    return EvidenceLocker(
        bucket=bucket,
        credentials=AwsCredentials(
            aws_access_key_id=ACCESS,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
        ),
        retention_days=1,
        max_concurrency=CONCURRENCY,
        **kwargs,
    )


def _put_args(locker: EvidenceLocker, key: str, body: bytes) -> dict[str, Any]:
    # exactly the headers the locker sends on a write
    return {
        "Bucket": locker.bucket,
        "Key": key,
        "Body": body,
        "IfNoneMatch": "*",
        "ContentType": "application/octet-stream",
        "ChecksumSHA256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
        "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": datetime.now(UTC) + timedelta(days=1),
    }


# -- ingest ---------------------------------------------------------------------------------


def _ingest_locker(
    locker: EvidenceLocker, n: int, tag: str, signer: StatementSigner | None = None
) -> float:
    blobs = [os.urandom(4096) for _ in range(n)]
    assets = [_asset(tag, i) for i in range(n)]

    def one(i: int) -> None:
        attachment = locker.store_attachment_bytes(blobs[i], "report.xml")
        record = make_evidence(
            evidence_type_id="com.ibm.unit_tests", result="success", tool="pytest",
            scope=f"bench-{tag}", assets=[assets[i]], attachments=[attachment],
        )  # fmt: skip
        # what `record_report` does with a key: the record stored with its envelope
        locker.put_evidence(record, [assets[i]], sign_evidence(record, [assets[i]], signer))

    def run() -> None:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(one, range(n)))

    return _timed(run)


def _signing_only(signer: StatementSigner, n: int, tag: str) -> float:
    """Seconds to build and sign `n` evidence statements, one thread: signing's own cost."""
    asset = _asset(tag, 0)
    records = [
        make_evidence(
            evidence_type_id="com.ibm.unit_tests", result="success", tool="pytest",
            scope=f"bench-{tag}-{i}", assets=[asset],
        )
        for i in range(n)
    ]  # fmt: skip
    return _timed(
        lambda: [signer.sign(evidence_statement(r, {asset.id: asset.uri})) for r in records]
    )


def _ingest_raw(locker: EvidenceLocker, n: int, tag: str) -> float:
    client = locker.client
    work = []
    for i in range(n):
        blob = os.urandom(4096)
        asset = _asset(tag, i)
        attachment = Attachment(hash="sha256:" + hashlib.sha256(blob).hexdigest(), url="s3://x")
        record = make_evidence(
            evidence_type_id="com.ibm.unit_tests", result="success", tool="pytest",
            scope=f"bench-{tag}", assets=[asset], attachments=[attachment],
        )  # fmt: skip
        layout = locker.layout
        work.append(
            [
                _put_args(locker, layout.attachment(attachment.hash), blob),
                _put_args(locker, layout.asset(asset.id), asset.to_json()),
                _put_args(locker, layout.evidence(record.id), record.to_json()),
                _put_args(locker, layout.marker(asset.id, record.id), b""),
            ]
        )

    def one(puts: list[dict[str, Any]]) -> None:
        for args in puts:
            client.put_object(**args)

    def run() -> None:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(one, work))

    return _timed(run)


# -- attachment ----------------------------------------------------------------------------

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
endpoint, secret, bucket, path, how = sys.argv[1:6]
start = time.perf_counter()
if how == "import":
    sys.path.insert(0, {bench!r})
    from locker import _locker
    _locker(endpoint, secret, bucket).object_lock
    key = "none"
elif how == "locker":
    from pathlib import Path
    sys.path.insert(0, {bench!r})
    from locker import _locker
    attachment = _locker(endpoint, secret, bucket).store_attachment(Path(path))
    key = attachment.hash
else:
    import boto3
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id={access!r},
                          aws_secret_access_key=secret, region_name="us-east-1")
    client.upload_file(path, bucket, "raw-baseline/" + str(time.time()))
    key = "raw"
elapsed = time.perf_counter() - start
# VmHWM: this process's own peak RSS (getrusage's ru_maxrss would carry over the parent's
# peak across fork and exec on Linux)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({{"s": elapsed, "key": key, "hwm_kib": int(hwm),
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def _child(endpoint: str, secret: str, bucket: str, path: Path, how: str) -> tuple[float, float]:
    """Run one upload in a child process; its seconds and its own peak RSS (VmHWM) in MB."""
    code = _CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), access=ACCESS)
    process = subprocess.Popen(
        [sys.executable, "-c", code, endpoint, secret, bucket, str(path), how],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    out = process.stdout.read()
    status = process.wait()
    if status != 0:
        raise RuntimeError(f"{how} upload failed")
    found = json.loads(out)
    return float(found["s"]), found["hwm_kib"] / 1024


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A smaller run.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument("--records", type=int, help="Ingest this many records instead.")
    args = parser.parse_args()
    size = dict(QUICK if args.quick else FULL)
    if args.records:
        size["records"] = args.records
    say = (lambda *_: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    secret = secrets.token_hex(20)
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-locker-") as tmp:
        ports = seaweedfs_ports()
        process, endpoint = start_seaweedfs(Path(tmp) / "seaweedfs", ACCESS, secret, ports=ports)
        filer = f"http://127.0.0.1:{ports['filer']}"
        try:
            results = _run(endpoint, filer, secret, Path(tmp), size, say)
        finally:
            stop_process(process.pid)
    if args.json:
        print(json.dumps(results, sort_keys=True))
    else:
        _table(results, size)


def _run(
    endpoint: str, filer: str, secret: str, tmp: Path, size: dict[str, int], say: Any
) -> dict[str, Any]:
    n = size["records"]
    lockers = {}
    ingest_buckets = ("ingest-locker", "ingest-signed", "ingest-raw")
    for name in (*ingest_buckets, "summary-small", "summary-large", "attachment"):
        locker = _locker(endpoint, secret, f"bench-{name}")
        locker.create_bucket()
        lockers[name] = locker
    say(f"ingest: {n} records through the locker and the raw baseline, best of {ROUNDS} rounds")
    signer = StatementSigner(new_key())
    times: dict[str, list[float]] = {"raw": [], "lk": [], "sg": []}
    ways: dict[str, Callable[[str], float]] = {
        "raw": lambda tag: _ingest_raw(lockers["ingest-raw"], n, tag),
        "lk": lambda tag: _ingest_locker(lockers["ingest-locker"], n, tag),
        "sg": lambda tag: _ingest_locker(lockers["ingest-signed"], n, tag, signer),
    }
    for round_ in range(ROUNDS):
        # the ways take turns going first: the store's background work after a burst of
        # writes lands on whichever runs next, so no way always follows the others
        for name in [*ways][round_ % 3 :] + [*ways][: round_ % 3]:
            times[name].append(ways[name](f"{name}{round_}"))
    locker_s, signed_s, raw_s = times["lk"], times["sg"], times["raw"]
    ingest = n / min(locker_s)
    ingest_signed = n / min(signed_s)
    ingest_raw = n / min(raw_s)
    # signing's share: its CPU (one thread) against the wall time of the signed ingest
    signing_s = min(_signing_only(signer, n, f"cpu{r}") for r in range(2))

    say(f"summary: delta of {size['assets']} assets x {size['per_asset']} records, two lockers")
    small_locker, large_locker = lockers["summary-small"], lockers["summary-large"]
    delta = _fill(small_locker, filer, size["assets"], size["per_asset"], "delta")
    _fill(large_locker, filer, size["assets"], size["per_asset"], "delta")
    others = size["others"] // size["per_asset"]
    say(f"summary: filling {size['others']:,} other records in the large one by raw PUTs")
    fill_start = time.perf_counter()
    _fill(large_locker, filer, others, size["per_asset"], "other")
    fill_s = time.perf_counter() - fill_start
    caches = {}
    for name, locker in (("small", small_locker), ("large", large_locker)):
        caches[name] = tmp / f"cache-{name}"
        locker.use_record_cache(caches[name])
        _summary(locker, delta, "warm", None)
    # alternate, so a change of load on the machine falls on both alike; best of five each.
    # Warm: the records are in the local cache (as after the CI run on this machine, or any
    # earlier read), so a summary is one LIST per asset; cold: the cache emptied first, one
    # GET per record too, beside the raw floor of the same requests.
    small_s, large_s, cold_small_s, cold_large_s, raw_s = [], [], [], [], []
    for _ in range(5):
        small_s.append(_summary(small_locker, delta, "small", None))
        large_s.append(_summary(large_locker, delta, "large", None))
        cold_small_s.append(_summary(small_locker, delta, "small", caches["small"]))
        cold_large_s.append(_summary(large_locker, delta, "large", caches["large"]))
        raw_s.append(_summary_raw(large_locker, delta))
    small, large = min(small_s), min(large_s)
    cold_small, cold_large, raw_floor = min(cold_small_s), min(cold_large_s), min(raw_s)

    say(f"attachment: {size['size'] >> 20} MiB, raw boto3 upload_file then the locker")
    big = tmp / "big.bin"
    with big.open("wb") as out:
        out.truncate(size["size"])  # sparse: the disk holds nothing until SeaweedFS writes it
    _, floor_rss = _child(endpoint, secret, "bench-attachment", big, "import")
    raw_up_s, raw_rss = _child(endpoint, secret, "bench-attachment", big, "raw")
    up_s, rss = _child(endpoint, secret, "bench-attachment", big, "locker")
    return {
        "ingest_records_per_s": round(ingest, 1),
        "ingest_raw_records_per_s": round(ingest_raw, 1),
        "ingest_ratio": round(ingest / ingest_raw, 3),
        "ingest_signed_records_per_s": round(ingest_signed, 1),
        "ingest_signed_ratio": round(ingest_signed / ingest_raw, 3),
        "ingest_signed_ratio_target": 0.8,
        "signing_cost": round(1 - ingest_signed / ingest, 3),
        "signing_share": round(signing_s / min(signed_s), 3),
        "signing_us_per_record": round(signing_s / n * 1e6, 1),
        "summary_s_small": round(small, 3),
        "summary_s_large": round(large, 3),
        "summary_ratio": round(large / small, 3),
        "summary_s_target": 1.0,
        "summary_ratio_target": 1.5,
        "summary_cold_s_small": round(cold_small, 3),
        "summary_cold_s_large": round(cold_large, 3),
        "summary_cold_ratio": round(cold_large / cold_small, 3),
        "summary_cold_raw_floor_s": round(raw_floor, 3),
        "summary_cold_vs_floor": round(cold_large / raw_floor, 3),
        "ingest_ratio_target": 0.8,
        "summary_fill_records_per_s": round(size["others"] / fill_s, 1),
        "attachment_mib": size["size"] >> 20,
        "attachment_peak_rss_mb": round(rss, 1),
        "attachment_s": round(up_s, 2),
        "attachment_raw_peak_rss_mb": round(raw_rss, 1),
        "attachment_import_rss_mb": round(floor_rss, 1),
        "attachment_raw_s": round(raw_up_s, 2),
        "records": n,
        "delta_assets": size["assets"],
        "other_records": size["others"],
    }


def _table(r: dict[str, Any], size: dict[str, int]) -> None:
    rows = [
        ("ingest, records/s", f"{r['ingest_records_per_s']:.0f}",
         f"{r['ingest_raw_records_per_s']:.0f} (4 raw PUTs/record)",
         f"{r['ingest_ratio']:.2f}", ">= 0.8"),
        ("ingest, signing on (envelope in the record's PUT), records/s",
         f"{r['ingest_signed_records_per_s']:.0f}",
         f"{r['ingest_raw_records_per_s']:.0f} (4 raw PUTs/record)",
         f"{r['ingest_signed_ratio']:.2f}", ">= 0.8"),
        (f"signing's share of signed ingest ({r['signing_us_per_record']:.0f} us/record CPU)",
         f"{r['signing_share']:.1%}", "-",
         f"{r['signing_cost']:.1%} slower than unsigned", "-"),
        (f"summary of {size['assets']}x{size['per_asset']}, s (locker holds only them)",
         f"{r['summary_s_small']:.3f}", "-", "-", "< 1 s"),
        (f"same, locker also holds {size['others']:,} others, s", f"{r['summary_s_large']:.3f}",
         f"{r['summary_s_small']:.3f} (the small locker)", f"{r['summary_ratio']:.2f}", "<= 1.5"),
        (f"{r['attachment_mib']} MiB attachment, peak RSS MB", f"{r['attachment_peak_rss_mb']:.0f}",
         f"{r['attachment_raw_peak_rss_mb']:.0f} (boto3 upload_file)",
         f"{r['attachment_peak_rss_mb'] / r['attachment_raw_peak_rss_mb']:.2f}", "< 150 MB"),
        ("cold (record cache emptied), small locker, s", f"{r['summary_cold_s_small']:.3f}",
         "-", "-", "-"),
        ("cold, the large locker, s", f"{r['summary_cold_s_large']:.3f}",
         f"{r['summary_cold_raw_floor_s']:.3f} (raw LIST + GET, same threads)",
         f"{r['summary_cold_vs_floor']:.2f}", "-"),
        ("same, a child that only imports and loads the locker, peak RSS MB",
         f"{r['attachment_import_rss_mb']:.0f}", "-", "-", "-"),
        (f"{r['attachment_mib']} MiB attachment, s", f"{r['attachment_s']:.1f}",
         f"{r['attachment_raw_s']:.1f} (boto3 upload_file)",
         f"{r['attachment_raw_s'] / r['attachment_s']:.2f}", "-"),
    ]  # fmt: skip
    head = ("case", "changeflow", "raw baseline", "ratio", "target")
    widths = [max(len(str(row[i])) for row in (head, *rows)) for i in range(5)]
    for row in (head, tuple("-" * w for w in widths), *rows):
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
