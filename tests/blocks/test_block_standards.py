"""Prefect's standard checks for every changeflow block, and `prefect block register -m blocks`."""

from __future__ import annotations

import html
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite

import blocks
from blocks import (
    EvidenceLocker,
    GitChangeManagement,
    GitIncidents,
    GitInventory,
    ServiceNowChangeManagement,
    ServiceNowIncidents,
)

ROOT = Path(__file__).resolve().parents[2]
BLOCKS: list[type[Block]] = [
    EvidenceLocker,
    GitInventory,
    GitChangeManagement,
    ServiceNowChangeManagement,
    GitIncidents,
    ServiceNowIncidents,
]


class _Standard(BlockStandardTestSuite):
    def test_has_a_valid_image(self, block: type[Block]) -> None:
        # Prefect's version downloads the logo; CI reaches only package registries, so the same
        # facts are checked offline: a logo is set, served over https, square and 45-1000 px
        # (Prefect's CDN names its images `<hash>-<width>x<height>.<ext>`)
        logo = block._logo_url
        assert logo is not None, f"{block.__name__} is missing a value for _logo_url"
        assert str(logo).startswith("https://"), logo
        size = re.search(r"-(\d+)x(\d+)\.(png|svg|jpg|jpeg)$", str(logo))
        assert size, f"{logo}: the file name does not give the image's size"
        width, height = int(size[1]), int(size[2])
        assert width == height, "Logo should be a square image"
        assert 1000 > width > 45, f"Logo should be between 45px and 1000px wide, not {width}px"


class TestEvidenceLockerStandards(_Standard):
    @pytest.fixture
    def block(self) -> type[Block]:
        return EvidenceLocker


class TestGitInventoryStandards(_Standard):
    @pytest.fixture
    def block(self) -> type[Block]:
        return GitInventory


class TestGitChangeManagementStandards(_Standard):
    @pytest.fixture
    def block(self) -> type[Block]:
        return GitChangeManagement


class TestServiceNowChangeManagementStandards(_Standard):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ServiceNowChangeManagement


class TestGitIncidentsStandards(_Standard):
    @pytest.fixture
    def block(self) -> type[Block]:
        return GitIncidents


class TestServiceNowIncidentsStandards(_Standard):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ServiceNowIncidents


def test_the_package_exports_every_block() -> None:
    found = {cls for _, cls in inspect.getmembers(blocks) if Block.is_block_class(cls)}
    assert found == set(BLOCKS)
    assert sorted(blocks.__all__) == sorted(cls.__name__ for cls in BLOCKS)


def test_importing_the_package_does_not_import_prefect() -> None:
    # the local stack (and `changeflow dev`) import cli.local_stack before Prefect's settings
    # are in place; the block classes are imported on first use
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys, blocks, cli.local_stack; print('prefect' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "False"


def test_prefect_block_register_registers_every_block(prefect_api: str) -> None:
    from prefect import get_client

    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "blocks"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Successfully registered {len(BLOCKS)} blocks" in done.stdout, done.stdout
    with get_client(sync_client=True) as client:
        for cls in BLOCKS:
            block_type = client.read_block_type_by_slug(cls.get_block_type_slug())
            assert block_type.name == cls.get_block_type_name()
            # the server stores the description HTML-escaped
            assert html.unescape(block_type.description or "") == cls.get_description()
            schema = client.get_most_recent_block_schema_for_block_type(block_type.id)
            assert schema is not None
            assert set(cls.model_fields) <= set(schema.fields["properties"])
