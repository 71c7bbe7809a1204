"""In-memory implementations of every port: the record stores of fast tests.

Each keeps the semantics the flows rely on (content addressing and write-once, re-hash on read,
compare-and-swap on labels and CR ids, one history entry per change) without a server; the
contract suite (`tests/contract/test_ports.py`) runs the same tests against them and the real
adapters, so they cannot drift. `memory_stores()` gives a fresh set, to install with
`blocks.stores.use_stores`.
"""

from __future__ import annotations

from blocks.memory.changes import MemoryChangeManagement, MemoryIncidents
from blocks.memory.evidence import MemoryEvidenceStore
from blocks.memory.inventory import MemoryInventory
from changeflow.ports import Stores

__all__ = [
    "MemoryChangeManagement",
    "MemoryEvidenceStore",
    "MemoryIncidents",
    "MemoryInventory",
    "memory_stores",
]


def memory_stores(*, locked: bool = True) -> Stores:
    """A fresh, empty set of in-memory stores.

    Args:
        locked: whether the evidence store passes the storage check (Object Lock on).
    """
    return Stores(
        evidence=MemoryEvidenceStore(locked=locked),
        inventory=MemoryInventory(),
        changes=MemoryChangeManagement(),
        incidents=MemoryIncidents(),
    )
