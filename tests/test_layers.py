"""Imports point down only: domain → blocks → tasks → flows → the command line on top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["changeflow", "blocks", "tasks", "flows", "cli"]
# the domain is plain pydantic and functions: no I/O library at all
DOMAIN_FORBIDDEN = {"prefect", "prefect_aws", "boto3", "botocore", "git", "subprocess", "httpx"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def _violations(layer: str) -> list[str]:
    rank = LAYERS.index(layer)
    above = set(LAYERS[rank + 1 :])
    forbidden = above | (DOMAIN_FORBIDDEN if layer == "changeflow" else set())
    return [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _modules(layer)
        for line, module in _imports(path)
        if module.split(".")[0] in forbidden
    ]


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_down_only(layer: str) -> None:
    assert _modules(layer), f"no modules in {layer}/"
    assert _violations(layer) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    # the check itself can fail: a domain module importing a flow is named
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from flows.deploy_flow import deploy\n    import boto3\n")
    assert [m for _, m in _imports(module)] == ["flows.deploy_flow", "boto3"]


def test_in_memory_stores_are_plain_python() -> None:
    # the in-memory ports stand in for S3 and git in fast tests: they must not need either
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "blocks" / "memory").rglob("*.py"))
        for line, module in _imports(path)
        if module.split(".")[0] in DOMAIN_FORBIDDEN
        or (module.startswith("blocks.") and not module.startswith("blocks.memory"))
    ]
    assert found == []
