"""Fixtures: local GitHub and GitLab stand-ins over a real bare repo (see forges.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from forges import Forge, _serve


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.git"
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch=master", str(path)], check=True
    )
    return path


@pytest.fixture
def github(bare: Path) -> Iterator[Forge]:
    yield from _serve("github", bare)


@pytest.fixture
def gitlab(bare: Path) -> Iterator[Forge]:
    yield from _serve("gitlab", bare)
