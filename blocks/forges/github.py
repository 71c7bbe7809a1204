"""Pull requests on GitHub, over its documented REST API.

`GET /repos/{owner}/{repo}/pulls?head={owner}:{branch}&base={base}&state=open` finds one
already open, then `POST /repos/{owner}/{repo}/pulls` with `title`, `head`, `base`, `body`;
headers `Authorization: Bearer <token>`, `Accept: application/vnd.github+json`,
`X-GitHub-Api-Version: 2022-11-28`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from blocks.forges.forge import Forge, PullRequest

__all__ = ["GitHubPullRequests"]

_GITHUB_API_VERSION = "2022-11-28"


class GitHubPullRequests(Forge):
    """Pull requests on GitHub (or GitHub Enterprise: set `api_url`).

    Attributes:
        repository: "owner/repo".
        api_url: the REST root (`https://api.github.com`, or `https://HOST/api/v3`).
    """

    # 422: a pull request for this head and base is already open
    _forge: ClassVar[str] = "GitHub"
    _what: ClassVar[str] = "pull request"
    _raced_status: ClassVar[int] = 422

    kind: Literal["github"] = "github"
    repository: str = Field(pattern=r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")
    api_url: str = "https://api.github.com"

    def _base_url(self) -> str:
        return self.api_url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token.get_secret_value()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": _GITHUB_API_VERSION,
        }

    def _find(self, client: httpx.Client, head: str, base: str) -> PullRequest | None:
        owner = self.repository.split("/")[0]
        found = self._call(
            client,
            "GET",
            f"/repos/{self.repository}/pulls",
            params={"head": f"{owner}:{head}", "base": base, "state": "open"},
            accept=(200,),
        ).json()
        for pull in found if isinstance(found, list) else []:
            if pull.get("head", {}).get("ref") == head and pull.get("base", {}).get("ref") == base:
                return self._parse(pull, created=False)
        return None

    def _create(self, head: str, base: str, title: str, body: str) -> tuple[str, dict[str, str]]:
        path = f"/repos/{self.repository}/pulls"
        return path, {"title": title, "head": head, "base": base, "body": body}

    def _parse(self, data: dict[str, Any], created: bool) -> PullRequest:
        return PullRequest(
            number=data["number"],
            url=data["html_url"],
            head=data["head"]["ref"],
            base=data["base"]["ref"],
            state=data["state"],
            created=created,
        )
