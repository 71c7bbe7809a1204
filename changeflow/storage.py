"""Whether the evidence locker's bucket can keep evidence immutable: the storage check's verdict.

The adapter reads the facts (versioning, Object Lock, the default rule, a probe's retention);
this module decides, once, whether they are enough, and says so on one line.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["BucketStatus", "Retention", "StorageCheck", "judge_storage"]


class Retention(BaseModel):
    """A retention the bucket applies: its mode and how many days."""

    mode: str | None = None
    days: int = 0
    key: str | None = Field(default=None, description="The probe object's key, for a probe.")


class BucketStatus(BaseModel):
    """What a bucket is set up to do: versioning, Object Lock, the retention it applies."""

    bucket: str
    versioned: bool
    object_lock: bool
    retention_mode: str | None = None
    retention_days: int = 0


class StorageCheck(BaseModel):
    """The storage check's facts and verdict, as recorded in `com.ibm.immutable_storage`."""

    bucket: str
    versioned: bool
    locked: bool
    retention_mode: str | None
    retention_days: int
    default_retention: Retention | None
    probe: Retention | None
    required_days: int
    required_mode: str
    retention_ok: bool
    ok: bool
    checked_at: datetime

    @property
    def summary(self) -> str:
        """The verdict on one line."""
        return (
            f"bucket {self.bucket}: versioned={self.versioned} locked={self.locked} "
            f"retention {self.retention_days} days ({self.retention_mode}), "
            f"needs {self.required_days} ({self.required_mode})"
        )


def judge_storage(
    status: BucketStatus,
    default_retention: Retention | None,
    probe: Retention | None,
    *,
    required_days: int,
    required_mode: str,
    checked_at: datetime,
) -> StorageCheck:
    """Decide whether a bucket keeps evidence immutable for at least `required_days`.

    The retention counted is the shortest of the bucket's default rule (which covers objects
    written without explicit retention) and the probe (which proves the server applies what the
    locker asks for); its mode is the probe's. All three of versioned, locked and retention_ok
    are needed for `ok`.
    """
    days_seen = [r.days for r in (default_retention, probe) if r is not None]
    days = min(days_seen) if days_seen else 0
    mode = probe.mode if probe else None
    retention_ok = status.object_lock and days >= required_days and mode == required_mode
    return StorageCheck(
        bucket=status.bucket,
        versioned=status.versioned,
        locked=status.object_lock,
        retention_mode=mode,
        retention_days=days,
        default_retention=default_retention,
        probe=probe,
        required_days=required_days,
        required_mode=required_mode,
        retention_ok=retention_ok,
        ok=status.versioned and status.object_lock and retention_ok,
        checked_at=checked_at,
    )
