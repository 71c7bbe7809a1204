"""The evidence bucket itself: creating it, its lock configuration, its status, the storage check.

The facts are read here; whether they are enough is decided once, in `changeflow.storage`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from blocks.s3.layout import Layout
from blocks.s3.objects import S3Objects, error_code
from changeflow.canonical import canonical_json, digest
from changeflow.errors import IntegrityError
from changeflow.storage import BucketStatus, Retention, StorageCheck, judge_storage

__all__ = [
    "bucket_status",
    "check_storage",
    "create_bucket",
    "default_rule",
    "object_lock_enabled",
]

_ALREADY_THERE = ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")


def _lock_configuration(objects: S3Objects) -> dict[str, Any]:
    try:
        conf = objects.call(
            "read the bucket's lock configuration",
            objects.client.get_object_lock_configuration,
            Bucket=objects.bucket,
        )
    except ClientError:
        # a bucket without Object Lock answers with an error: no configuration
        return {}
    found: dict[str, Any] = conf.get("ObjectLockConfiguration", {})
    return found


def object_lock_enabled(objects: S3Objects) -> bool:
    """Whether the bucket has Object Lock enabled."""
    return bool(_lock_configuration(objects).get("ObjectLockEnabled") == "Enabled")


def default_rule(objects: S3Objects) -> Retention | None:
    """The bucket's default retention (`Days`, or `Years` x 365), or None without a rule."""
    rule = _lock_configuration(objects).get("Rule", {}).get("DefaultRetention")
    if not rule:
        return None
    days = int(rule.get("Days") or 0) + 365 * int(rule.get("Years") or 0)
    return Retention(mode=rule.get("Mode"), days=days)


def create_bucket(objects: S3Objects, mode: str, days: int) -> bool:
    """Create the bucket with Object Lock on and a default rule (idempotent).

    The default rule (`mode` for `days`) covers objects written without explicit retention; a
    bucket that already has a rule keeps it.

    Returns:
        Whether the bucket has Object Lock enabled.
    """
    created = True
    try:
        objects.call(
            "create the bucket",
            objects.client.create_bucket,
            Bucket=objects.bucket,
            ObjectLockEnabledForBucket=True,
        )
    except ClientError as exc:
        if error_code(exc)[0] not in _ALREADY_THERE:
            raise
        created = False
    locked = object_lock_enabled(objects)
    if locked and (created or default_rule(objects) is None):
        objects.call(
            "set the bucket's default retention",
            objects.client.put_object_lock_configuration,
            Bucket=objects.bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
            },
        )
    return locked


def bucket_status(objects: S3Objects, locked: bool, mode: str, days: int) -> BucketStatus:
    """Whether the bucket is versioned and locked, and the retention the locker applies."""
    versioning = objects.call(
        "read the bucket's versioning",
        objects.client.get_bucket_versioning,
        Bucket=objects.bucket,
    ).get("Status")
    return BucketStatus(
        bucket=objects.bucket,
        versioned=versioning == "Enabled",
        object_lock=locked,
        retention_mode=mode if locked else None,
        retention_days=days if locked else 0,
    )


def check_storage(
    objects: S3Objects, layout: Layout, status: BucketStatus, *, mode: str, days: int
) -> StorageCheck:
    """Check the bucket keeps evidence immutable for at least `days` in `mode`.

    Retention is the shortest of (a) the bucket's default rule, when it has one, which covers
    objects written without explicit retention, and (b) a probe: a tiny content-addressed object
    (`raw/checks/<h[:2]>/<h>/probe.json`) written exactly as evidence is, then read back; its
    days are (RetainUntilDate - LastModified) in whole days. The probe proves the server really
    applies the retention the locker asks for; under Object Lock it is itself retained, so each
    check leaves one object of about 100 bytes. An unlocked bucket gets no probe.
    """
    rule = default_rule(objects) if status.object_lock else None
    probe = _probe_retention(objects, layout) if status.object_lock else None
    return judge_storage(
        status, rule, probe, required_days=days, required_mode=mode, checked_at=datetime.now(UTC)
    )


def _probe_retention(objects: S3Objects, layout: Layout) -> Retention:
    body = canonical_json(
        {
            "probe": "changeflow locker check",
            "at": datetime.now(UTC).isoformat(),
            "nonce": secrets.token_hex(8),
        }
    )
    key = layout.probe(digest(body))
    objects.put_once(key, body, content_type="application/json")
    head = objects.head(key)
    if head is None:
        raise IntegrityError(f"{objects.url(key)} vanished right after it was written")
    until = head.get("ObjectLockRetainUntilDate")
    written = head.get("LastModified")
    days = 0
    if until is not None and written is not None:
        # one minute of slack: the server rounds both dates to seconds
        days = int(((until - written).total_seconds() + 60) // 86400)
    return Retention(key=key, mode=head.get("ObjectLockMode"), days=days)
