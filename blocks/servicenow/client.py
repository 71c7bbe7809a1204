"""What every ServiceNow block shares: the instance, its credentials and the Table API calls.

`ServiceNowBlock` is an abstract block, as the bases of `prefect.blocks.abstract` are:
`prefect block register` skips it, and each concrete block (change requests, incidents) keeps
its own type. Errors map to changeflow's: an unreachable instance is `StorageUnavailable`,
refused credentials or a refused request `ServiceNowError`.
"""

from __future__ import annotations

from abc import ABC
from datetime import UTC, date, datetime
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, PrivateAttr, SecretStr, model_validator

from blocks.tls import default_tls
from changeflow.errors import ServiceTimeout, StorageUnavailable

__all__ = [
    "JOURNAL",
    "LOGO",
    "MARKER",
    "ServiceNowBlock",
    "ServiceNowError",
    "moment",
    "servicenow_time",
]

JOURNAL = "/api/now/table/sys_journal_field"
MARKER = "changeflow"
"""`correlation_display` of every record changeflow writes: how it finds its own."""
LOGO = HttpUrl(
    "https://cdn.sanity.io/images/3ugk85nk/production/d74b16fe84ce626345adf235a47008fea2869a60-225x225.png"
)
_STAMP = "%Y-%m-%d %H:%M:%S"
# seconds to open a connection; reads, writes and the pool wait the block's `timeout`
CONNECT_TIMEOUT = 5.0


class ServiceNowError(RuntimeError):
    """ServiceNow refused a request (credentials, permissions, validation)."""


def servicenow_time(when: datetime | date | None) -> str:
    """A date-time as the Table API reads and writes it: UTC, `YYYY-MM-DD HH:MM:SS`."""
    if when is None:
        return ""
    if not isinstance(when, datetime):
        return f"{when.isoformat()} 00:00:00"
    return when.astimezone(UTC).strftime(_STAMP)


def moment(stamp: str) -> datetime | None:
    """Read a Table API date-time (UTC); None when it is empty or not one."""
    try:
        return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


class ServiceNowBlock(Block, ABC):
    """A ServiceNow instance and how to sign in to it.

    Attributes:
        instance_url: e.g. `https://example.service-now.com`.
        username: API user for basic auth (with `password`).
        password: that user's password.
        token: an OAuth bearer token, instead of username and password.
        timeout: seconds a request may wait for each read or write (connecting: at most 5).
    """

    instance_url: str = Field(description="ServiceNow instance URL.")
    username: str | None = Field(default=None, description="API user (basic auth).")
    password: SecretStr | None = Field(default=None, description="The API user's password.")
    token: SecretStr | None = Field(default=None, description="OAuth bearer token.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds per request.")

    _transport: httpx.BaseTransport | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if not self.instance_url.startswith(("https://", "http://")):
            raise ValueError("instance_url must be an http(s) URL")
        if self.token is None and not (self.username and self.password):
            raise ValueError("give username and password, or token")
        return self

    def with_transport(self, transport: httpx.BaseTransport) -> Self:
        """Send requests through `transport` (a proxy, a test harness); returns self."""
        self._transport = transport
        return self

    @classmethod
    def on_instance_of(cls, other: ServiceNowBlock) -> Self:
        """This kind of block on the instance `other` uses, with its credentials and transport."""
        block = cls(
            instance_url=other.instance_url,
            username=other.username,
            password=other.password,
            token=other.token,
            timeout=other.timeout,
        )
        block._transport = other._transport
        return block

    @property
    def where(self) -> str:
        """The instance URL without any credentials in it, for messages and links."""
        parts = urlsplit(self.instance_url.rstrip("/"))
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path}"

    # ----------------------------------------------------------------------------- HTTP

    def _client(self) -> httpx.Client:
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        elif self.username and self.password:
            auth = httpx.BasicAuth(self.username, self.password.get_secret_value())
        return httpx.Client(
            base_url=self.instance_url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, CONNECT_TIMEOUT)),
            transport=self._transport,
            verify=default_tls(),
        )

    def call(
        self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> httpx.Response | None:
        """Send one request; None for a 404 when `missing_ok`.

        Raises:
            StorageUnavailable: when the instance cannot be reached.
            ServiceNowError: when it refuses the credentials or the request.
        """
        try:
            with self._client() as client:
                response = client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            # a silent instance: one request, no retry, so a call ends within its timeouts
            raise ServiceTimeout(
                f"ServiceNow at {self.where} is unreachable: no answer within "
                f"{self.timeout:g} s ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise StorageUnavailable(
                f"ServiceNow at {self.where} is unreachable: {type(exc).__name__}"
            ) from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code in (401, 403) and "Data Policy" not in _message(response):
            raise ServiceNowError(
                f"ServiceNow at {self.where} refused the credentials "
                f"({response.status_code} {_message(response)}): check username and "
                "password, or token"
            )
        if response.status_code >= 400:
            raise ServiceNowError(
                f"ServiceNow {method} {path} failed ({response.status_code}): {_message(response)}"
            )
        return response

    def result(self, method: str, path: str, **kwargs: Any) -> Any:
        """The `result` of a Table or Attachment API answer."""
        response = self.call(method, path, **kwargs)
        assert response is not None
        return response.json()["result"]

    def rows(self, table: str, query: str, limit: int | None = None) -> list[dict[str, str]]:
        """The records of `table` matching an encoded query."""
        params = {"sysparm_query": query}
        if limit is not None:
            params["sysparm_limit"] = str(limit)
        found: list[dict[str, str]] = self.result("GET", f"/api/now/table/{table}", params=params)
        return found

    def work_notes(self, sys_id: str) -> list[dict[str, str]]:
        """A record's work notes (journal entries), newest first."""
        query = f"element_id={sys_id}^element=work_notes^ORDERBYDESCsys_created_on"
        notes: list[dict[str, str]] = self.result("GET", JOURNAL, params={"sysparm_query": query})
        return notes


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        return " - ".join(p for p in (error.get("message"), error.get("detail")) if p)
    except (ValueError, AttributeError):
        return response.reason_phrase
