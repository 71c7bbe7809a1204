"""Big attachments: hashed, then uploaded in parts streamed from disk, with constant memory.

Two passes over the file. The key is the file's sha256, so it must be known before the upload
starts: a first pass (`hash_file`) hashes the file and each part. The second (`upload`) sends
each part with its own ChecksumSHA256, which the server checks, and completes with
`If-None-Match: *` (SeaweedFS and AWS S3 honour it on CompleteMultipartUpload), so the object
appears whole or not at all and never replaces another. Uploading to a temporary key and copying
was rejected: under Object Lock the temporary object would itself be retained for the whole
retention period, and a copy is limited to 5 GiB.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from s3transfer.utils import ReadFileChunk

from blocks.s3.objects import S3Objects, b64, error_code, precondition_failed
from changeflow.errors import IntegrityError

__all__ = ["MIB", "composite", "hash_file", "part_size", "upload"]

MIB = 1024 * 1024
# S3 allows at most 10,000 parts; parts (but the last) are at least 5 MiB
_MAX_PARTS = 10_000
# what S3 servers answer when a body does not match the checksum sent with it
_DIGEST_ERRORS = {"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"}


def part_size(size: int, preferred: int) -> int:
    """The part size for a file of `size` bytes: `preferred`, grown when S3 would need more
    parts than it allows."""
    needed = -(-size // _MAX_PARTS)
    return max(preferred, -(-needed // MIB) * MIB)


def hash_file(path: Path, part_bytes: int) -> tuple[str, list[str]]:
    """The file's sha256 and each part's sha256 (hex), read in one streaming pass."""
    whole, parts = hashlib.sha256(), list[str]()
    with path.open("rb") as stream:
        while True:
            part, left = hashlib.sha256(), part_bytes
            while left:
                chunk = stream.read(min(MIB, left))
                if not chunk:
                    break
                whole.update(chunk)
                part.update(chunk)
                left -= len(chunk)
            if left == part_bytes:
                return whole.hexdigest(), parts
            parts.append(part.hexdigest())
            if left:
                return whole.hexdigest(), parts


def composite(part_hashes: list[str]) -> str:
    """The composite ChecksumSHA256 S3 reports for a multipart object with these part hashes."""
    joined = b"".join(bytes.fromhex(h) for h in part_hashes)
    return f"{base64.b64encode(hashlib.sha256(joined).digest()).decode()}-{len(part_hashes)}"


def upload(
    objects: S3Objects,
    key: str,
    path: Path,
    hex_: str,
    part_hashes: list[str],
    part_bytes: int,
    concurrency: int,
) -> bool:
    """Upload `path` to `key` in parts, each checked by the server against the first pass.

    Returns:
        True when written; False when another writer stored the key first (the caller checks
        it holds the same bytes).

    Raises:
        IntegrityError: when the file changed since it was hashed, or the server assembled
            other parts than were sent.
    """
    started = objects.call(
        f"start uploading {key}",
        objects.client.create_multipart_upload,
        Bucket=objects.bucket,
        Key=key,
        ContentType="application/octet-stream",
        ChecksumAlgorithm="SHA256",
        # the composite checksum S3 keeps is over parts: keep the whole-object sha256 too
        Metadata={"sha256": hex_},
        **objects.retention(),
    )
    upload_id: str = started["UploadId"]
    try:
        parts = _upload_parts(objects, key, upload_id, path, part_hashes, part_bytes, concurrency)
        try:
            done = objects.call(
                f"complete {key}",
                objects.client.complete_multipart_upload,
                Bucket=objects.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if not precondition_failed(exc):
                raise
            _abort(objects, key, upload_id)
            return False
    except BaseException:
        _abort(objects, key, upload_id)
        raise
    if done.get("ChecksumSHA256", composite(part_hashes)) != composite(part_hashes):
        raise IntegrityError(f"{objects.url(key)} was assembled from other parts than were sent")
    return True


def _upload_parts(
    objects: S3Objects,
    key: str,
    upload_id: str,
    path: Path,
    expected: list[str],
    part_bytes: int,
    concurrency: int,
) -> list[dict[str, Any]]:
    """Send the parts, each read from disk as it goes out (memory does not grow with them).

    Each part carries the sha256 the first pass computed, and the server refuses a part whose
    bytes do not match it: so the object assembled is exactly the bytes that hashed to its key,
    even if the file changed in between.
    """
    size = path.stat().st_size

    def send(number: int) -> dict[str, Any]:
        start = (number - 1) * part_bytes
        checksum = b64(expected[number - 1])
        # a window on the file: boto3 reads (and re-reads on a retry) it in small chunks
        with ReadFileChunk.from_filename(
            str(path), start, min(part_bytes, size - start), enable_callbacks=False
        ) as body:
            try:
                result = objects.call(
                    f"upload part {number} of {key}",
                    objects.client.upload_part,
                    Bucket=objects.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ChecksumSHA256=checksum,
                )
            except ClientError as exc:
                if error_code(exc)[0] in _DIGEST_ERRORS:
                    raise IntegrityError(f"{path} changed while it was being stored") from exc
                raise
        return {"PartNumber": number, "ETag": result["ETag"], "ChecksumSHA256": checksum}

    if -(-size // part_bytes) != len(expected):
        raise IntegrityError(f"{path} changed while it was being stored")
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(send, range(1, len(expected) + 1)))


def _abort(objects: S3Objects, key: str, upload_id: str) -> None:
    # best effort: an upload left incomplete is never an object (readers cannot see it), and a
    # bucket lifecycle rule (AbortIncompleteMultipartUpload) reclaims its parts
    with contextlib.suppress(Exception):  # cleanup must not hide the error that led here
        objects.client.abort_multipart_upload(Bucket=objects.bucket, Key=key, UploadId=upload_id)
