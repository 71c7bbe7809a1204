"""The audit tests' stack: a signed CR history on the real SeaweedFS locker and a real git
remote, built once per module; each attack rewrites a copy of the remote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_support import Attack, History, Signed, make_signed
from stack_support import S3Server, new_bucket

from changeflow.models import ChangeRequest
from cli.local_stack import init_bare_repo


@pytest.fixture(scope="module")
def history(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    root = tmp_path_factory.mktemp("signed-history")
    locker = s3_server.locker(new_bucket(), retention_days=1)
    locker.create_bucket()
    remote = root / "remote.git"
    init_bare_repo(remote, "main")
    with pytest.MonkeyPatch.context() as env:  # the keys, for the whole module
        yield History(make_signed(root, env, remote, locker))


@pytest.fixture
def attack(history: History, tmp_path: Path) -> Attack:
    """`attack(kind)`: the CR of that kind and the stack on a fresh copy of its remote."""

    def copy(kind: str) -> tuple[Signed, ChangeRequest]:
        cr = history.cr(kind)
        return history.signed.mirror(tmp_path), cr

    return copy
