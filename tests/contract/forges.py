"""Local stand-ins for the GitHub and GitLab REST APIs, held to their documented contracts.

Each server listens on a free loopback port and accepts exactly the requests the documentation
describes (method, path, auth and media-type headers, JSON body fields), answering with the
documented status codes and response shapes. Anything else is answered 400/404 and recorded in
`violations`, so a client that drifts from the contract fails its test. Branches named in a
request must exist in the real bare git remote the server stands in front of, as on the forges.

GitHub: https://docs.github.com/en/rest/pulls/pulls (create, list)
GitLab: https://docs.gitlab.com/ee/api/merge_requests.html (create, list)
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "ghp_contractTOKEN0123456789"
GITHUB_REPO = "acme/inventory"
GITLAB_PROJECT = "acme/inventory"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Forge:
    """What a stand-in server saw and holds."""

    url: str
    git_dir: Path
    requests: list[Recorded] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    hide_next_list: bool = False  # answer the next list with [] (another writer's race)

    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def branch_sha(self, name: str) -> str | None:
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "rev-parse", "--verify", "--quiet",
             f"refs/heads/{name}"],
            capture_output=True, text=True,
        )  # fmt: skip
        return done.stdout.strip() if done.returncode == 0 else None


class _Handler(BaseHTTPRequestHandler):
    forge: Forge
    kind: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _violation(self, status: int, text: str) -> None:
        self.forge.violations.append(f"{self.command} {self.path}: {text}")
        self._reply(status, {"message": text})

    def _handle(self) -> None:
        split = urlsplit(self.path)
        body: Any = None
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                return self._violation(400, "body is not JSON")
        self.forge.requests.append(
            Recorded(self.command, split.path, parse_qs(split.query), dict(self.headers), body)
        )
        if self.kind == "github":
            self._github(split.path, parse_qs(split.query), body)
        else:
            self._gitlab(split.path, parse_qs(split.query), body)

    do_GET = _handle
    do_POST = _handle

    # ------------------------------------------------------------------------------ GitHub

    def _github(self, path: str, query: dict[str, list[str]], body: Any) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            docs = "https://docs.github.com/rest"
            return self._reply(401, {"message": "Bad credentials", "documentation_url": docs})
        if self.headers.get("Accept") != "application/vnd.github+json":
            return self._violation(415, "Accept must be application/vnd.github+json")
        if self.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            return self._violation(400, "X-GitHub-Api-Version must be 2022-11-28")
        if path != f"/repos/{GITHUB_REPO}/pulls":
            return self._violation(404, "Not Found")
        if self.command == "GET":
            return self._github_list(query)
        if self.headers.get_content_type() != "application/json" or not isinstance(body, dict):
            return self._violation(400, "POST wants a JSON object body")
        unknown = set(body) - {"title", "head", "base", "body", "draft", "maintainer_can_modify"}
        missing = {"title", "head", "base"} - set(body)
        if unknown or missing:
            return self._violation(422, f"unknown {sorted(unknown)} / missing {sorted(missing)}")
        head, base = body["head"], body["base"]
        if self.forge.branch_sha(base) is None or self.forge.branch_sha(head) is None:
            field_name = "base" if self.forge.branch_sha(base) is None else "head"
            return self._reply(422, {"message": "Validation Failed", "errors": [
                {"resource": "PullRequest", "field": field_name, "code": "invalid"}]})  # fmt: skip
        if any(p["head"]["ref"] == head and p["state"] == "open" for p in self.forge.pulls):
            owner = GITHUB_REPO.split("/")[0]
            return self._reply(422, {"message": "Validation Failed", "errors": [
                {"resource": "PullRequest", "code": "custom",
                 "message": f"A pull request already exists for {owner}:{head}."}]})  # fmt: skip
        number = len(self.forge.pulls) + 1
        pull = {
            "id": 1000 + number,
            "number": number,
            "state": "open",
            "title": body["title"],
            "body": body.get("body"),
            "url": f"{self.forge.url}/repos/{GITHUB_REPO}/pulls/{number}",
            "html_url": f"https://github.com/{GITHUB_REPO}/pull/{number}",
            "head": {"ref": head, "sha": self.forge.branch_sha(head),
                     "label": f"{GITHUB_REPO.split('/')[0]}:{head}"},
            "base": {"ref": base, "sha": self.forge.branch_sha(base),
                     "label": f"{GITHUB_REPO.split('/')[0]}:{base}"},
            "draft": bool(body.get("draft", False)),
            "merged": False,
        }  # fmt: skip
        self.forge.pulls.append(pull)
        self._reply(201, pull)

    def _github_list(self, query: dict[str, list[str]]) -> None:
        unknown = set(query) - {"state", "head", "base", "sort", "direction", "per_page", "page"}
        if unknown:
            return self._violation(400, f"unknown query parameters {sorted(unknown)}")
        if self.forge.hide_next_list:
            self.forge.hide_next_list = False
            return self._reply(200, [])
        state = query.get("state", ["open"])[0]
        head = query.get("head", [None])[0]
        if head is not None and ":" not in head:
            return self._violation(400, "head must be user:ref-name")
        base = query.get("base", [None])[0]
        owner = GITHUB_REPO.split("/")[0]
        found = [
            p
            for p in self.forge.pulls
            if (state == "all" or p["state"] == state)
            and (head is None or head == f"{owner}:{p['head']['ref']}")
            and (base is None or base == p["base"]["ref"])
        ]
        self._reply(200, found)

    # ------------------------------------------------------------------------------ GitLab

    def _gitlab(self, path: str, query: dict[str, list[str]], body: Any) -> None:
        if self.headers.get("PRIVATE-TOKEN") != TOKEN:
            return self._reply(401, {"message": "401 Unauthorized"})
        # The project path travels URL-encoded as one segment; the raw request line shows it.
        encoded = GITLAB_PROJECT.replace("/", "%2F")
        if urlsplit(self.path).path != f"/api/v4/projects/{encoded}/merge_requests":
            return self._violation(404, "404 Project Not Found")
        if self.command == "GET":
            unknown = set(query) - {"state", "source_branch", "target_branch", "per_page", "page"}
            if unknown:
                return self._violation(400, f"unknown query parameters {sorted(unknown)}")
            if self.forge.hide_next_list:
                self.forge.hide_next_list = False
                return self._reply(200, [])
            state = query.get("state", ["all"])[0]
            source = query.get("source_branch", [None])[0]
            target = query.get("target_branch", [None])[0]
            found = [
                m
                for m in self.forge.pulls
                if (state == "all" or m["state"] == state)
                and (source is None or m["source_branch"] == source)
                and (target is None or m["target_branch"] == target)
            ]
            return self._reply(200, found)
        if self.headers.get_content_type() != "application/json" or not isinstance(body, dict):
            return self._violation(400, "POST wants a JSON object body")
        allowed = {"source_branch", "target_branch", "title", "description", "assignee_id",
                   "labels", "remove_source_branch", "squash", "target_project_id"}  # fmt: skip
        unknown = set(body) - allowed
        missing = {"source_branch", "target_branch", "title"} - set(body)
        if unknown or missing:
            return self._violation(400, f"unknown {sorted(unknown)} / missing {sorted(missing)}")
        source, target = body["source_branch"], body["target_branch"]
        if self.forge.branch_sha(source) is None or self.forge.branch_sha(target) is None:
            return self._reply(404, {"message": "404 Branch Not Found"})
        for m in self.forge.pulls:
            if m["source_branch"] == source and m["state"] == "opened":
                return self._reply(409, {"message": [
                    f"Another open merge request already exists for this source branch: "
                    f"!{m['iid']}"]})  # fmt: skip
        iid = len(self.forge.pulls) + 1
        merge = {
            "id": 5000 + iid,
            "iid": iid,
            "project_id": 42,
            "title": body["title"],
            "description": body.get("description"),
            "state": "opened",
            "source_branch": source,
            "target_branch": target,
            "sha": self.forge.branch_sha(source),
            "web_url": f"https://gitlab.com/{GITLAB_PROJECT}/-/merge_requests/{iid}",
        }
        self.forge.pulls.append(merge)
        self._reply(201, merge)


def _serve(kind: str, git_dir: Path) -> Iterator[Forge]:
    handler = type(f"{kind}Handler", (_Handler,), {"kind": kind})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    host, port = server.server_address[:2]
    base = f"http://{host!s}:{port}" + ("/api/v4" if kind == "gitlab" else "")
    forge = Forge(url=base, git_dir=git_dir)
    handler.forge = forge
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield forge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
