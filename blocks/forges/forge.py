"""What every forge client shares: the request model, its errors, HTTP calls, find-or-open.

Looking first makes a rerun return the request already open instead of a duplicate (or an
error); a create that loses a race to another run answers with the one that run opened.
Tokens are `SecretStr` and never appear in a message, a log line or a repr.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from blocks.tls import default_tls
from changeflow.errors import ServiceTimeout, StorageUnavailable

__all__ = ["Forge", "PullRequest", "PullRequestError", "PullRequestTimeout"]

_RETRIED_STATUSES = {502, 503, 504}
# seconds to open a connection; reads and writes wait the client's `timeout`
_CONNECT_TIMEOUT = 5.0


class PullRequestError(StorageUnavailable):
    """The forge refused or could not be reached; the message never holds the token.

    A `StorageUnavailable`, so the CLI reports it on one line with exit code 1.
    """


class PullRequestTimeout(PullRequestError, ServiceTimeout):
    """The forge took the connection but did not answer within the client's timeout."""


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


class Forge(BaseModel):
    """A forge's REST API: subclasses say where it is, how to find, create and read a request.

    Attributes:
        token: API token (sent as a header, never logged).
        timeout: seconds an HTTP request may wait for each read or write (connecting: at most 5).
    """

    model_config = ConfigDict(extra="forbid")

    token: SecretStr = Field(description="API token (sent as a header, never logged).")
    timeout: float = Field(default=30.0, gt=0, description="Seconds per HTTP request.")

    _transport: httpx.BaseTransport | None = PrivateAttr(default=None)

    # what differs between forges: what they call it, how a race answers
    _forge: ClassVar[str] = "the forge"
    _what: ClassVar[str] = "request"
    _raced_status: ClassVar[int] = 409

    def with_transport(self, transport: httpx.BaseTransport | None) -> Self:
        """Return a copy that sends its requests through `transport` (a proxy, a test server)."""
        copy = self.model_copy()
        copy._transport = transport
        return copy

    def _base_url(self) -> str:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _find(self, client: httpx.Client, head: str, base: str) -> PullRequest | None:
        raise NotImplementedError

    def _create(self, head: str, base: str, title: str, body: str) -> tuple[str, dict[str, str]]:
        raise NotImplementedError

    def _parse(self, data: dict[str, Any], created: bool) -> PullRequest:
        raise NotImplementedError

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self._base_url(),
            headers=self._headers(),
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, _CONNECT_TIMEOUT)),
            transport=self._transport,
            verify=default_tls(),
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
            except httpx.TimeoutException as exc:
                # a silent forge is not asked again: the call ends within its timeouts
                raise PullRequestTimeout(
                    f"{method} {self._base_url()}{path} failed: no answer within "
                    f"{self.timeout:g} s ({type(exc).__name__})"
                ) from None
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
