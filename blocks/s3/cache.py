"""A local cache of evidence records that verified, kept by their id (the sha256 of the record).

Evidence is content-addressed and immutable: a record read once and found to hash to its id is
the same record forever, so a summary need not GET it again. Each locker (endpoint, bucket,
prefix) has its own folder, so a record cached from one bucket never stands in for another's.
A cached record is trusted only because it is re-hashed when read back: one that was altered or
cut short on disk is dropped and read from the store again. Audits (`verify_*`) never read
here: they re-hash what the store holds.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from changeflow.models import Evidence

__all__ = ["RecordCache", "default_cache_root"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def default_cache_root() -> Path:
    """`$CHANGEFLOW_HOME/cache/evidence` (CHANGEFLOW_HOME defaults to `~/.changeflow`)."""
    home = os.environ.get("CHANGEFLOW_HOME") or "~/.changeflow"
    return Path(home).expanduser() / "cache" / "evidence"


class RecordCache:
    """Verified evidence records of one locker on local disk.

    Args:
        root: the folder of every locker's cache.
        store: what names the locker (endpoint, bucket and prefix); hashed into a folder name.
    """

    def __init__(self, root: Path, store: str) -> None:
        self.path = root / hashlib.sha256(store.encode("utf-8")).hexdigest()[:16]

    def _file(self, evidence_id: str) -> Path | None:
        # only an id that is a sha256 becomes a path: nothing else can reach the disk
        if not _HEX64.fullmatch(evidence_id):
            return None
        return self.path / evidence_id[:2] / f"{evidence_id}.json"

    def get(self, evidence_id: str) -> Evidence | None:
        """The cached record, re-hashed; None when absent or when it no longer verifies."""
        file = self._file(evidence_id)
        if file is None:
            return None
        try:
            raw = file.read_bytes()
        except OSError:
            return None
        try:
            record = Evidence.model_validate_json(raw)
        except ValueError:
            record = None
        if record is None or record.id != evidence_id or not record.is_sealed():
            file.unlink(missing_ok=True)  # damaged on disk: the store has the real one
            return None
        return record

    def put(self, record: Evidence) -> None:
        """Keep a record that verified; a full or read-only disk only costs a later GET."""
        file = self._file(record.id)
        if file is None or not record.is_sealed():
            return
        tmp: str | None = None
        try:
            file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # written aside and renamed, so a reader never sees half a record
            fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.write(record.to_json())
            os.replace(tmp, file)
        except OSError:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
