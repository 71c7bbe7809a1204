"""Open a promotion as a pull request (GitHub) or merge request (GitLab), over their REST APIs.

Only the documented calls are used:

- GitHub: `GET /repos/{owner}/{repo}/pulls?head={owner}:{branch}&base={base}&state=open` to find
  one already open, then `POST /repos/{owner}/{repo}/pulls` with `title`, `head`, `base`, `body`;
  headers `Authorization: Bearer <token>`, `Accept: application/vnd.github+json`,
  `X-GitHub-Api-Version: 2022-11-28`.
- GitLab: `GET /projects/{id}/merge_requests?source_branch=…&target_branch=…&state=opened`,
  then `POST /projects/{id}/merge_requests` with `source_branch`, `target_branch`, `title`,
  `description`; header `PRIVATE-TOKEN: <token>`.

Looking first makes a rerun return the request already open instead of a duplicate (or an error).
Tokens are `SecretStr` and never appear in a message, a log line or a repr.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from changeflow.errors import StorageUnavailable

__all__ = [
    "GitHubPullRequests",
    "GitLabMergeRequests",
    "PullRequest",
    "PullRequestError",
    "PullRequestProvider",
]

_GITHUB_API_VERSION = "2022-11-28"
_RETRIED_STATUSES = {502, 503, 504}


class PullRequestError(StorageUnavailable):
    """The forge refused or could not be reached; the message never holds the token.

    A `StorageUnavailable`, so the CLI reports it on one line with exit code 1.
    """


class PullRequest(BaseModel):
    """A pull or merge request as the forge reports it.

    Attributes:
        number: the PR number (GitHub) or the MR's `iid` (GitLab).
        url: the page people open to review it.
        head: the branch it merges.
        base: the branch it merges into.
        state: the forge's state ("open", "opened", …).
        created: True when this call opened it, False when it was open already.
    """

    number: int
    url: str
    head: str
    base: str
    state: str
    created: bool


class _Forge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr = Field(description="API token (sent as a header, never logged).")
    timeout: float = Field(default=30.0, gt=0, description="Seconds per HTTP request.")

    _transport: httpx.BaseTransport | None = PrivateAttr(default=None)

    def with_transport(self, transport: httpx.BaseTransport | None) -> Self:
        """Return a copy that sends its requests through `transport` (a proxy, a test server)."""
        copy = self.model_copy()
        copy._transport = transport
        return copy

    def _base_url(self) -> str:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self._base_url(),
            headers=self._headers(),
            timeout=self.timeout,
            transport=self._transport,
            follow_redirects=False,
        )

    def _call(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, str] | None = None,
        accept: tuple[int, ...] = (200, 201),
    ) -> httpx.Response:
        response: httpx.Response | None = None
        # One retry on a gateway error: a promotion branch is already pushed, and a transient
        # proxy failure should not leave it without its request.
        for _ in range(2):
            try:
                response = client.request(method, path, params=params, json=body)
            except httpx.HTTPError as exc:
                raise PullRequestError(
                    f"{method} {self._base_url()}{path} failed: {type(exc).__name__}"
                ) from None
            if response.status_code not in _RETRIED_STATUSES:
                break
        assert response is not None
        if response.status_code not in accept:
            raise PullRequestError(
                f"{method} {self._base_url()}{path} answered {response.status_code}: "
                f"{self._scrub(_message(response))}"
            )
        return response

    def _scrub(self, text: str) -> str:
        # A forge should never echo the token, but a proxy in between might.
        secret = self.token.get_secret_value()
        return text.replace(secret, "***") if secret else text

    # what differs between forges: what they call it, how to create one, how a race answers
    _forge: ClassVar[str] = "the forge"
    _what: ClassVar[str] = "request"
    _raced_status: ClassVar[int] = 409

    def _find(self, client: httpx.Client, head: str, base: str) -> PullRequest | None:
        raise NotImplementedError

    def _create(self, head: str, base: str, title: str, body: str) -> tuple[str, dict[str, str]]:
        raise NotImplementedError

    def _parse(self, data: dict[str, Any], created: bool) -> PullRequest:
        raise NotImplementedError

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        """Open a request to merge `head` into `base`, or return the one already open.

        Raises:
            PullRequestError: when the forge refuses or cannot be reached.
        """
        with self._client() as client:
            existing = self._find(client, head, base)
            if existing is not None:
                return existing
            path, payload = self._create(head, base, title, body)
            response = self._call(
                client, "POST", path, body=payload, accept=(201, self._raced_status)
            )
            if response.status_code == self._raced_status:
                # Another run opened it between the look and the POST: answer with that one.
                raced = self._find(client, head, base)
                if raced is None:
                    raise PullRequestError(
                        f"{self._forge} refused the {self._what} {head} -> {base}: "
                        f"{self._scrub(_message(response))}"
                    )
                return raced
            return self._parse(response.json(), created=True)


class GitHubPullRequests(_Forge):
    """Pull requests on GitHub (or GitHub Enterprise: set `api_url`).

    Attributes:
        repository: "owner/repo".
        api_url: the REST root (`https://api.github.com`, or `https://HOST/api/v3`).
    """

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


class GitLabMergeRequests(_Forge):
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


PullRequestProvider = Annotated[
    GitHubPullRequests | GitLabMergeRequests, Field(discriminator="kind")
]


def _message(response: httpx.Response) -> str:
    """The forge's error message, on one line and short (its body never echoes the token)."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else "-"
    if isinstance(data, dict):
        text = data.get("message") or data.get("error") or data
        errors = data.get("errors")
        if errors:
            text = f"{text} ({errors})"
        return " ".join(str(text).split())[:300]
    return " ".join(str(data).split())[:300]
