"""Merge requests on GitLab, over its documented REST API.

`GET /projects/{id}/merge_requests?source_branch=…&target_branch=…&state=opened` finds one
already open, then `POST /projects/{id}/merge_requests` with `source_branch`, `target_branch`,
`title`, `description`; header `PRIVATE-TOKEN: <token>`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from pydantic import Field

from blocks.forges.forge import Forge, PullRequest

__all__ = ["GitLabMergeRequests"]


class GitLabMergeRequests(Forge):
    """Merge requests on GitLab (gitlab.com or self-managed: set `api_url`).

    Attributes:
        project: the project's numeric id or its path ("group/project").
        api_url: the REST root (`https://gitlab.com/api/v4`).
    """

    # 409: another open merge request for this source branch exists
    _forge: ClassVar[str] = "GitLab"
    _what: ClassVar[str] = "merge request"
    _raced_status: ClassVar[int] = 409

    kind: Literal["gitlab"] = "gitlab"
    project: str = Field(min_length=1)
    api_url: str = "https://gitlab.com/api/v4"

    def _base_url(self) -> str:
        return self.api_url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.token.get_secret_value(), "Accept": "application/json"}

    def _path(self) -> str:
        # GitLab takes a project path URL-encoded as one segment ("group%2Fproject").
        return f"/projects/{quote(self.project, safe='')}/merge_requests"

    def _find(self, client: httpx.Client, head: str, base: str) -> PullRequest | None:
        found = self._call(
            client,
            "GET",
            self._path(),
            params={"source_branch": head, "target_branch": base, "state": "opened"},
            accept=(200,),
        ).json()
        for merge in found if isinstance(found, list) else []:
            if merge.get("source_branch") == head and merge.get("target_branch") == base:
                return self._parse(merge, created=False)
        return None

    def _create(self, head: str, base: str, title: str, body: str) -> tuple[str, dict[str, str]]:
        return self._path(), {
            "source_branch": head,
            "target_branch": base,
            "title": title,
            "description": body,
        }

    def _parse(self, data: dict[str, Any], created: bool) -> PullRequest:
        return PullRequest(
            number=data["iid"],
            url=data["web_url"],
            head=data["source_branch"],
            base=data["target_branch"],
            state=data["state"],
            created=created,
        )
