"""The evidence locker's plumbing on S3-compatible storage, one job per module.

- `objects`: the boto3 client, every call guarded (errors mapped to `BadInput` or
  `StorageUnavailable`), write-once puts, heads, reads, streams and listings;
- `layout`: where each record lives in the bucket;
- `multipart`: big attachments, hashed and uploaded in parts with constant memory;
- `attachments`: attachment bytes, stored under their sha256 and re-hashed on every read;
- `records`: evidence records, assets, their markers and deployment summaries;
- `verification`: re-hashing evidence, summaries and inventory entries into a `Verification`;
- `bucket`: creating the bucket, its lock configuration, its status and the storage check.

The `EvidenceLocker` block (`blocks/evidence_locker.py`) holds the configuration and puts these
together; nothing here imports Prefect.
"""

from __future__ import annotations

__all__: list[str] = []
