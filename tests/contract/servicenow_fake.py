"""A ServiceNow instance for tests: the documented Table and Attachment API, served over HTTP.

It implements what changeflow uses, the way ServiceNow documents it:

- `POST /api/now/table/change_request` creates a record; ServiceNow assigns `sys_id` and
  `number` (CHG + 7 digits) and answers 201.
- `GET /api/now/table/change_request?sysparm_query=...` lists records (`field=value` terms
  joined by `^`, plus `ORDERBY<field>` / `ORDERBYDESC<field>`).
- `GET|PATCH /api/now/table/change_request/{sys_id}` reads or updates one; writing
  `work_notes` appends a journal entry (`sys_journal_field`) instead of storing the field.
- `GET /api/now/table/sys_journal_field?sysparm_query=element_id=...^element=work_notes`.
- `POST /api/now/attachment/file?table_name=&table_sys_id=&file_name=` stores the body;
  `GET /api/now/attachment?sysparm_query=...` lists attachments; `GET
  /api/now/attachment/{sys_id}/file` returns the bytes.

Every answer is wrapped as `{"result": ...}`; errors as `{"error": {"message", "detail"},
"status": "failure"}`. Field values are strings, as ServiceNow returns them by default.

It is stricter than ServiceNow where that catches client bugs: an unknown field, an
unparseable query or a value outside a choice list is a 400 (ServiceNow would silently ignore
the field, or worse, ignore the query and return every record).
"""

from __future__ import annotations

import base64
import itertools
import json
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["CHANGE_FIELDS", "ServiceNowFake"]

# Writable change_request fields the client may send (a subset of the real table's columns).
CHANGE_FIELDS = frozenset(
    {
        "short_description",
        "description",
        "type",
        "state",
        "priority",
        "justification",
        "risk_impact_analysis",
        "implementation_plan",
        "backout_plan",
        "test_plan",
        "start_date",
        "end_date",
        "close_code",
        "close_notes",
        "correlation_id",
        "correlation_display",
        "work_notes",
        "comments",
        "category",
    }
)
_READ_ONLY = frozenset({"sys_id", "number", "sys_created_on", "sys_updated_on", "sys_created_by"})
_CHOICES = {
    "state": {"-5", "-4", "-3", "-2", "-1", "0", "3", "4"},
    "type": {"standard", "normal", "emergency"},
    "priority": {"1", "2", "3", "4", "5"},
    "close_code": {"", "successful", "successful_issues", "unsuccessful"},
}
_JOURNAL_FIELDS = frozenset({"work_notes", "comments"})


def _error(status: int, message: str, detail: str = "") -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "detail": detail}, "status": "failure"}, status_code=status
    )


def _random() -> str:
    return uuid.uuid4().hex


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class QueryError(ValueError):
    """A sysparm_query the fake cannot parse."""


def parse_query(query: str, known: frozenset[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Parse an encoded query into (field, value) equality terms and order-by fields.

    Order fields are returned as `field` or `-field` (descending).

    Raises:
        QueryError: for an operator other than `=`, or an unknown field.
    """
    terms: list[tuple[str, str]] = []
    order: list[str] = []
    for term in query.split("^") if query else []:
        if term.startswith("ORDERBYDESC"):
            name, desc = term.removeprefix("ORDERBYDESC"), True
        elif term.startswith("ORDERBY"):
            name, desc = term.removeprefix("ORDERBY"), False
        else:
            name, sep, value = term.partition("=")
            if not sep or not name or any(c in name for c in "!<>"):
                raise QueryError(f"unsupported query term {term!r}")
            if name not in known:
                raise QueryError(f"unknown field {name!r} in query")
            terms.append((name, value))
            continue
        if name not in known:
            raise QueryError(f"unknown order field {name!r}")
        order.append(f"-{name}" if desc else name)
    return terms, order


def _select(
    rows: list[dict[str, str]], query: str, known: frozenset[str], limit: str | None
) -> list[dict[str, str]]:
    terms, order = parse_query(query, known)
    found = [r for r in rows if all(r.get(k, "") == v for k, v in terms)]
    for key in reversed(order):
        name = key.lstrip("-")
        found.sort(key=lambda r, n=name: (r.get(n, ""), r.get("_seq", "")), reverse=key[0] == "-")
    if limit is not None:
        found = found[: int(limit)]
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in found]


@dataclass
class ServiceNowFake:
    """A ServiceNow instance on a free loopback port, for one test.

    Attributes:
        username, password: the basic-auth credentials it accepts.
        token: the bearer token it accepts.
        changes, journal, attachments: what it stores, for assertions.
        requests: (method, path) of every request, in order.
    """

    username: str = "changeflow.api"
    password: str = field(default_factory=_random, repr=False)
    token: str = field(default_factory=_random, repr=False)
    first_number: int = 30001
    changes: dict[str, dict[str, str]] = field(default_factory=dict)
    journal: list[dict[str, str]] = field(default_factory=list)
    attachments: dict[str, dict[str, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list, repr=False)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(self.first_number)
        self._seq = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ server lifecycle

    def start(self) -> ServiceNowFake:
        """Serve on 127.0.0.1 at a free port; `url` is the instance URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                break
            threading.Event().wait(0.01)
        else:  # pragma: no cover - only when the machine is badly overloaded
            raise RuntimeError("the ServiceNow fake did not start")
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    # ------------------------------------------------------------------------ the API

    def app(self) -> Starlette:
        table = "/api/now/table"
        return Starlette(
            routes=[
                Route(f"{table}/change_request", self._changes, methods=["GET", "POST"]),
                Route(f"{table}/change_request/{{sys_id}}", self._change, methods=["GET", "PATCH"]),
                Route(f"{table}/sys_journal_field", self._journal, methods=["GET"]),
                Route("/api/now/attachment/file", self._attach, methods=["POST"]),
                Route("/api/now/attachment", self._attachment_list, methods=["GET"]),
                Route("/api/now/attachment/{sys_id}/file", self._attachment_file, methods=["GET"]),
            ]
        )

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value == self.token
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return False
            return (user, password) == (self.username, self.password)
        return False

    async def _guard(self, request: Request) -> Response | None:
        self.requests.append((request.method, request.url.path))
        if not self._authorized(request):
            return _error(401, "User Not Authenticated", "Required to provide Auth information")
        if request.headers.get("accept", "application/json").split(";")[0] not in (
            "application/json",
            "*/*",
        ):
            return _error(406, "Not Acceptable", "only application/json is served")
        return None

    async def _body(self, request: Request) -> dict[str, str] | Response:
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return _error(415, "Unsupported Media Type", "send application/json")
        try:
            data = json.loads(await request.body())
        except ValueError:
            return _error(400, "Exception while reading request", "body is not JSON")
        if not isinstance(data, dict):
            return _error(400, "Exception while reading request", "body is not an object")
        unknown = sorted(set(data) - CHANGE_FIELDS)
        if unknown:
            return _error(400, "Invalid field", f"unknown or read-only fields: {unknown}")
        for name, value in data.items():
            if not isinstance(value, str):
                return _error(400, "Invalid value", f"{name} must be a string")
            if name in _CHOICES and value not in _CHOICES[name]:
                return _error(400, "Invalid value", f"{name}={value!r} is not a choice")
        return data

    def _write(self, record: dict[str, str], data: dict[str, str], user: str) -> None:
        for name, value in data.items():
            if name in _JOURNAL_FIELDS:
                if value:
                    self.journal.append(
                        {
                            "sys_id": uuid.uuid4().hex,
                            "element_id": record["sys_id"],
                            "element": name,
                            "name": "change_request",
                            "value": value,
                            "sys_created_on": _stamp(),
                            "sys_created_by": user,
                            "_seq": f"{next(self._seq):012d}",
                        }
                    )
                continue
            record[name] = value
        record["sys_updated_on"] = _stamp()

    def _user(self, request: Request) -> str:
        scheme = request.headers.get("authorization", "").partition(" ")[0].lower()
        return self.username if scheme == "basic" else "oauth.user"

    async def _changes(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        if request.method == "GET":
            known = CHANGE_FIELDS | _READ_ONLY
            try:
                rows = _select(
                    list(self.changes.values()),
                    request.query_params.get("sysparm_query", ""),
                    known,
                    request.query_params.get("sysparm_limit"),
                )
            except (QueryError, ValueError) as exc:
                return _error(400, "Invalid query", str(exc))
            return JSONResponse({"result": rows})
        data = await self._body(request)
        if isinstance(data, Response):
            return data
        with self._lock:
            sys_id = uuid.uuid4().hex
            record = {name: "" for name in CHANGE_FIELDS - _JOURNAL_FIELDS}
            record.update(
                sys_id=sys_id,
                number=f"CHG{next(self._numbers):07d}",
                state="-5",
                type="normal",
                priority="4",
                sys_created_on=_stamp(),
                sys_created_by=self._user(request),
                _seq=f"{next(self._seq):012d}",
            )
            self._write(record, data, self._user(request))
            self.changes[sys_id] = record
        return JSONResponse({"result": self._public(record)}, status_code=201)

    @staticmethod
    def _public(record: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    async def _change(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        record = self.changes.get(request.path_params["sys_id"])
        if record is None:
            return _error(404, "No Record found", "Record doesn't exist or ACL restricts it")
        if request.method == "PATCH":
            data = await self._body(request)
            if isinstance(data, Response):
                return data
            with self._lock:
                self._write(record, data, self._user(request))
        return JSONResponse({"result": self._public(record)})

    async def _journal(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        known = frozenset({"sys_id", "element_id", "element", "name", "value", "sys_created_on"})
        try:
            rows = _select(
                self.journal,
                request.query_params.get("sysparm_query", ""),
                known,
                request.query_params.get("sysparm_limit"),
            )
        except (QueryError, ValueError) as exc:
            return _error(400, "Invalid query", str(exc))
        return JSONResponse({"result": rows})

    async def _attach(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        params = request.query_params
        missing = [p for p in ("table_name", "table_sys_id", "file_name") if not params.get(p)]
        if missing:
            return _error(400, "Invalid parameters", f"missing {missing}")
        if params["table_name"] != "change_request" or params["table_sys_id"] not in self.changes:
            return _error(404, "No Record found", "the record to attach to does not exist")
        content_type = request.headers.get("content-type", "")
        if not content_type:
            return _error(400, "Invalid content type", "send the file's Content-Type")
        body = await request.body()
        with self._lock:
            sys_id = uuid.uuid4().hex
            meta = {
                "sys_id": sys_id,
                "table_name": params["table_name"],
                "table_sys_id": params["table_sys_id"],
                "file_name": params["file_name"],
                "content_type": content_type,
                "size_bytes": str(len(body)),
                "sys_created_on": _stamp(),
                "download_link": f"{request.base_url}api/now/attachment/{sys_id}/file",
                "_seq": f"{next(self._seq):012d}",
            }
            self.attachments[sys_id] = meta
            self.blobs[sys_id] = body
        return JSONResponse({"result": self._public(meta)}, status_code=201)

    async def _attachment_list(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        known = frozenset({"sys_id", "table_name", "table_sys_id", "file_name", "sys_created_on"})
        try:
            rows = _select(
                list(self.attachments.values()),
                request.query_params.get("sysparm_query", ""),
                known,
                request.query_params.get("sysparm_limit"),
            )
        except (QueryError, ValueError) as exc:
            return _error(400, "Invalid query", str(exc))
        return JSONResponse({"result": rows})

    async def _attachment_file(self, request: Request) -> Response:
        self.requests.append((request.method, request.url.path))
        if not self._authorized(request):
            return _error(401, "User Not Authenticated", "Required to provide Auth information")
        sys_id = request.path_params["sys_id"]
        if sys_id not in self.blobs:
            return _error(404, "No Record found", "attachment does not exist")
        return Response(self.blobs[sys_id], media_type=self.attachments[sys_id]["content_type"])

    def records(self, query: str = "") -> list[dict[str, Any]]:
        """The change_request rows matching an encoded query, for assertions."""
        return _select(list(self.changes.values()), query, CHANGE_FIELDS | _READ_ONLY, None)
