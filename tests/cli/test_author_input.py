"""`changeflow inventory add --author`: a bad author is bad input, and nothing is written."""

from __future__ import annotations

import pytest

from blocks.memory import memory_stores
from blocks.stores import use_stores
from changeflow.errors import BadInput
from cli.inventory import inventory_add

DIGEST = "sha256:" + "b" * 64
ENTRY = {
    "name": "app/bin", "artifact": "s3://b/k", "version": "1", "sha256": DIGEST,
    "type_": "file", "repository_url": "https://example.com/app", "commit_sha": "a" * 40,
    "build_number": "7", "pipeline_run_id": "ci-1", "provenance": f"artifact://app@{DIGEST}",
}  # fmt: skip
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBYqgPQwhFwBd+T+dRtQRLNCyl/4ZfEYRACvp9ZwXtDL"


@pytest.mark.parametrize(
    ("author", "key", "message"),
    [
        # a second line would pass for another field in the CR people read
        ("Eve <eve@example.com>\nApproved-by: alice", None, "--author: "),
        ("Eve <eve@example.com>", "not-a-key", "--author-key: "),
        (None, KEY, "--author-key needs --author"),
    ],
)
def test_a_bad_author_is_refused_before_anything_is_written(
    author: str | None, key: str | None, message: str
) -> None:
    with use_stores(memory_stores()) as stores:
        with pytest.raises(BadInput) as refused:
            inventory_add(**ENTRY, author=author, author_key=key)  # type: ignore[arg-type]
        assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
        assert stores.inventory.resolve("master") is None


def test_an_author_given_is_recorded_with_its_key() -> None:
    given = {"author": "Eve <eve@example.com>", "author_key": f"{KEY} eve@laptop"}
    with use_stores(memory_stores()) as stores:
        inventory_add(**ENTRY, **given)  # type: ignore[arg-type]
        author = stores.inventory.entries("master")["app/bin"].author
    assert author is not None and (author.identity, author.key) == ("Eve <eve@example.com>", KEY)
