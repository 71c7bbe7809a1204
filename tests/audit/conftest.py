"""The `signed` fixture: keys, a trust file, a real git CR repo and an in-memory locker."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_support import Signed, make_signed


@pytest.fixture
def signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bare: Path) -> Signed:
    return make_signed(tmp_path, monkeypatch, bare)
