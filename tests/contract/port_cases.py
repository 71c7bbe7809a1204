"""The implementations each port's contract runs against, and the records the contracts use.

Real adapters run on real services (the evidence locker on the suite's SeaweedFS, the git blocks
on fresh bare remotes, ServiceNow on the local fake of its documented API); the in-memory ones
are `blocks.memory`.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import pytest
from pydantic import SecretStr
from servicenow_fake import ServiceNowFake
from stack_support import S3Server, new_bucket

from blocks.change_management import GitChangeManagement
from blocks.evidence_locker import EvidenceLocker
from blocks.incidents import GitIncidents
from blocks.inventory import GitInventory
from blocks.memory import (
    MemoryChangeManagement,
    MemoryEvidenceStore,
    MemoryIncidents,
    MemoryInventory,
)
from blocks.servicenow import ServiceNowChangeManagement, ServiceNowIncidents
from changeflow.models import InventoryEntry
from changeflow.ports import ChangeManagement, EvidenceStore, IncidentStore, Inventory
from cli.local_stack import init_bare_repo

__all__ = [
    "EvidenceCase",
    "Opened",
    "entry",
    "open_changes",
    "open_evidence",
    "open_incidents",
    "open_inventory",
]

Port = TypeVar("Port")


@dataclass
class Opened(Generic[Port]):
    """A store, and a way to open another handle on the same records (another writer)."""

    kind: str
    store: Port
    another: Callable[[], Port]


@dataclass
class EvidenceCase:
    """An evidence store and how to change its stored bytes behind its back."""

    store: EvidenceStore
    overwrite_attachment: Callable[[str, bytes], None]
    overwrite_evidence: Callable[[str, bytes], None]


def _locker_case(locker: EvidenceLocker) -> EvidenceCase:
    def put(key: str, body: bytes) -> None:
        locker.client.put_object(Bucket=locker.bucket, Key=key, Body=body)

    def shard(h: str) -> str:
        return f"{h[:2]}/{h}"

    def overwrite_evidence(evidence_id: str, body: bytes) -> None:
        put(locker.key("raw/evidences", shard(evidence_id), "index.json"), body)
        # read on as a worker that never saw the original: this one keeps every record it
        # verified in its local cache, and the cache is the store's own business
        locker.use_record_cache(Path(tempfile.mkdtemp(prefix="changeflow-fresh-cache-")))

    # the keys of the storage layout (docs/architecture.md)
    return EvidenceCase(
        locker,
        lambda h, b: put(locker.key("raw/attachments", shard(h.split(":")[1]), "content"), b),
        lambda i, b: overwrite_evidence(i, b),
    )


def open_evidence(request: pytest.FixtureRequest, locked: bool) -> EvidenceCase:
    """The evidence store `request.param` names ("s3" or "memory"), with Object Lock or not."""
    if request.param == "memory":
        store = MemoryEvidenceStore(locked=locked, retention_days=1)
        return EvidenceCase(
            store,
            lambda h, b: store.overwrite(store.attachment_key(h), b),
            lambda i, b: store.overwrite(store.evidence_key(i), b),
        )
    server: S3Server = request.getfixturevalue("s3_server")
    locker = server.locker(new_bucket(), retention_days=1)
    if locked:
        locker.create_bucket()
    else:
        # no Object Lock: the objects can be overwritten out of band
        locker.client.create_bucket(Bucket=locker.bucket)
    return _locker_case(locker)


def _git_url(tmp_path: Path, name: str) -> str:
    return init_bare_repo(tmp_path / f"{name}.git")


def _servicenow(request: pytest.FixtureRequest) -> Callable[[], ServiceNowChangeManagement]:
    """A fresh ServiceNow (the local fake of its documented API) numbering from CHG0000001."""
    fake = ServiceNowFake(first_number=1).start()
    request.addfinalizer(fake.stop)
    return lambda: ServiceNowChangeManagement(
        instance_url=fake.url, username=fake.username, password=SecretStr(fake.password)
    )


def _mirrors(tmp_path: Path, make: Callable[[str, str], Port], name: str) -> Callable[[], Port]:
    """Open a git block on one bare remote, each time with a mirror of its own."""
    url, count = _git_url(tmp_path, name), iter(range(1000))
    return lambda: make(url, str(tmp_path / f"{name}-cache-{next(count)}"))


def open_inventory(request: pytest.FixtureRequest, tmp_path: Path) -> Opened[Inventory]:
    """The inventory `request.param` names ("git" or "memory")."""
    if request.param == "memory":
        memory = MemoryInventory()
        return Opened(request.param, memory, lambda: memory)
    another: Callable[[], Inventory] = _mirrors(
        tmp_path, lambda url, cache: GitInventory(remote_url=url, cache_dir=cache), "inventory"
    )
    return Opened(request.param, another(), another)


def open_changes(request: pytest.FixtureRequest, tmp_path: Path) -> Opened[ChangeManagement]:
    """The change management `request.param` names ("git", "servicenow" or "memory")."""
    another: Callable[[], ChangeManagement]
    if request.param == "memory":
        memory = MemoryChangeManagement()
        return Opened(request.param, memory, lambda: memory)
    if request.param == "servicenow":
        another = _servicenow(request)
    else:
        another = _mirrors(
            tmp_path,
            lambda url, cache: GitChangeManagement(remote_url=url, cache_dir=cache),
            "changes",
        )
    return Opened(request.param, another(), another)


def open_incidents(request: pytest.FixtureRequest, tmp_path: Path) -> IncidentStore:
    """The incident store `request.param` names ("git", "servicenow" or "memory")."""
    if request.param == "memory":
        return MemoryIncidents()
    if request.param == "servicenow":
        return ServiceNowIncidents.on_instance_of(_servicenow(request)())
    return GitIncidents(remote_url=_git_url(tmp_path, "changes"), cache_dir=str(tmp_path / "c"))


def entry(name: str, version: str = "1.0.0", **fields: str) -> InventoryEntry:
    """An inventory entry for an image `name` at `version` (fields override)."""
    hexa = hashlib.sha256(f"{name}@{version}".encode()).hexdigest()
    values = {
        "name": name, "artifact": f"docker://registry.example/{name}@sha256:{hexa}",
        "version": version, "type": "image", "sha256": f"sha256:{hexa}",
        "repository_url": "https://git.example/org/app",
        "commit_sha": hashlib.sha1(version.encode()).hexdigest(), "build_number": version,
        "pipeline_run_id": f"ci-{version}",
        "provenance": f"docker://registry.example/{name}@sha256:{hexa}", **fields,
    }  # fmt: skip
    return InventoryEntry.model_validate(values)
