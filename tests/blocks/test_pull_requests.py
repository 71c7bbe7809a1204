"""The pull-request client's configuration, secrecy and failure handling (no forge needed)."""

from __future__ import annotations

import json
import pickle
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from blocks.forges import GitHubPullRequests, GitLabMergeRequests, PullRequestError
from blocks.inventory import GitInventory
from changeflow.errors import BadInput, StorageUnavailable

TOKEN = "ghp_secretTOKENvalue42"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_token_never_shows(tmp_path: Path) -> None:
    client = GitHubPullRequests(repository="acme/inventory", token=SecretStr(TOKEN))
    inventory = GitInventory(remote_url="file:///nowhere.git", pull_requests=client)
    for text in [repr(client), str(client), client.model_dump_json(), repr(inventory),
                 json.dumps(inventory.model_dump(mode="json"))]:  # fmt: skip
        assert TOKEN not in text
    assert pickle.loads(pickle.dumps(inventory)).pull_requests == client


def test_an_unreachable_forge_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    client = GitLabMergeRequests(project="acme/inventory", token=SecretStr(TOKEN), api_url=url)
    with pytest.raises(PullRequestError, match="ConnectError") as info:
        client.open("promotion/prod/1", "prod", "t", "b")
    assert TOKEN not in str(info.value)
    assert isinstance(info.value, StorageUnavailable)  # the CLI: one line, exit 1


def test_configuration_is_checked() -> None:
    with pytest.raises(ValidationError):
        GitHubPullRequests(repository="just-a-name", token=SecretStr(TOKEN))
    with pytest.raises(ValidationError):
        GitLabMergeRequests(project="", token=SecretStr(TOKEN))
    with pytest.raises(ValidationError):
        GitInventory(remote_url="x", pull_requests={"kind": "bitbucket", "token": TOKEN})
    inventory = GitInventory(
        remote_url="x", pull_requests={"kind": "gitlab", "project": "42", "token": TOKEN}
    )
    assert isinstance(inventory.pull_requests, GitLabMergeRequests)
    assert inventory.pull_requests.api_url == "https://gitlab.com/api/v4"
    assert GitInventory(remote_url="x").pull_requests is None  # off by default


def test_without_a_forge_no_pull_request_is_opened(tmp_path: Path) -> None:
    inventory = GitInventory(remote_url="x", cache_dir=str(tmp_path))
    with pytest.raises(BadInput, match="no pull_requests forge"):
        inventory.open_pull_request("rel-1")


def wsgi(answers: Iterable[tuple[str, Any]], seen: list[str]) -> Callable[..., list[bytes]]:
    """A WSGI app answering each request with the next (status, JSON) of `answers`."""
    queue = iter(answers)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
        status, payload = next(queue)
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(payload).encode()]

    return app


def test_a_transport_can_be_given_and_a_gateway_error_is_retried_once() -> None:
    seen: list[str] = []
    pull = {
        "number": 7,
        "html_url": "https://github.com/acme/inventory/pull/7",
        "state": "open",
        "head": {"ref": "promotion/prod/1"},
        "base": {"ref": "prod"},
    }
    app = wsgi([("502 Bad Gateway", {}), ("200 OK", []), ("201 Created", pull)], seen)
    client = GitHubPullRequests(repository="acme/inventory", token=SecretStr(TOKEN))
    opened = client.with_transport(httpx.WSGITransport(app=app)).open(
        "promotion/prod/1", "prod", "t", "b"
    )
    assert (opened.number, opened.created) == (7, True)
    assert seen == ["GET /repos/acme/inventory/pulls"] * 2 + ["POST /repos/acme/inventory/pulls"]
    failing = wsgi([("503 Service Unavailable", {"message": "down"})] * 2, seen)
    with pytest.raises(PullRequestError, match="503: down"):
        client.with_transport(httpx.WSGITransport(app=failing)).open("h", "b", "t", "b")
