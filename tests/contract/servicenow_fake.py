"""A ServiceNow instance for tests: the documented Table and Attachment API, served over HTTP.

It implements what changeflow uses, the way ServiceNow documents it, for the `change_request`
and `incident` tables alike:

- `POST /api/now/table/<table>` creates a record; ServiceNow assigns `sys_id` and `number`
  (CHG or INC + 7 digits) and answers 201.
- `GET /api/now/table/<table>?sysparm_query=...` lists records (`field=value`, `IN`, `NOT IN`,
  `STARTSWITH` and `LIKE` terms joined by `^`, alternatives by `^OR`, plus `ORDERBY<field>` /
  `ORDERBYDESC<field>`; `sysparm_limit`).
- `GET|PATCH /api/now/table/<table>/{sys_id}` reads or updates one; writing `work_notes` or
  `comments` appends a journal entry (`sys_journal_field`) instead of storing the field.
  Every write stamps `sys_updated_on` and `sys_updated_by` (the authenticated user).
- `GET /api/now/table/sys_journal_field?sysparm_query=element_id=...^element=work_notes`.
- `GET /api/now/table/sys_audit?sysparm_query=documentkey=...^fieldname=approval`: every change
  of a field (`oldvalue`, `newvalue`, `user`, `sys_created_on`), as ServiceNow audits its tables.
- `POST /api/now/attachment/file?table_name=&table_sys_id=&file_name=` stores the body;
  `GET /api/now/attachment?sysparm_query=...` lists attachments; `GET
  /api/now/attachment/{sys_id}/file` returns the bytes.
- An incident's `priority` is derived from urgency and impact (ServiceNow's default priority
  lookup: urgency + impact - 1), and resolving or closing one needs `close_code` and
  `close_notes` (ServiceNow's data policy for resolved incidents).

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
from typing import Any

import uvicorn
from servicenow_api import (
    CHANGE_FIELDS,
    INCIDENT_FIELDS,
    JOURNAL_FIELDS,
    READ_ONLY,
    TABLES,
    QueryError,
    Table,
    error,
    public,
    random_secret,
    select,
    stamp,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["CHANGE_FIELDS", "INCIDENT_FIELDS", "ServiceNowFake"]


@dataclass
class ServiceNowFake:
    """A ServiceNow instance on a free loopback port, for one test.

    Attributes:
        username, password: the basic-auth credentials of changeflow's API user.
        approvers: other users (name → password) who may sign in, as a CAB member would.
        token: the bearer token it accepts (its user is `oauth.user`).
        changes, incidents, journal, attachments: what it stores, for assertions.
        requests: (method, path) of every request, in order.
    """

    username: str = "changeflow.api"
    password: str = field(default_factory=random_secret, repr=False)
    approvers: dict[str, str] = field(
        default_factory=lambda: {"cab.approver": random_secret()}, repr=False
    )
    token: str = field(default_factory=random_secret, repr=False)
    first_number: int = 30001
    changes: dict[str, dict[str, str]] = field(default_factory=dict)
    incidents: dict[str, dict[str, str]] = field(default_factory=dict)
    journal: list[dict[str, str]] = field(default_factory=list)
    audit: list[dict[str, str]] = field(default_factory=list)
    attachments: dict[str, dict[str, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list, repr=False)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = {name: itertools.count(self.first_number) for name in TABLES}
        self._seq = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.tables = {"change_request": self.changes, "incident": self.incidents}

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
                Route(f"{table}/sys_journal_field", self._journal, methods=["GET"]),
                Route(f"{table}/sys_audit", self._audit, methods=["GET"]),
                Route(f"{table}/{{table}}", self._records, methods=["GET", "POST"]),
                Route(f"{table}/{{table}}/{{sys_id}}", self._record, methods=["GET", "PATCH"]),
                Route("/api/now/attachment/file", self._attach, methods=["POST"]),
                Route("/api/now/attachment", self._attachment_list, methods=["GET"]),
                Route("/api/now/attachment/{sys_id}/file", self._attachment_file, methods=["GET"]),
            ]
        )

    def _user(self, request: Request) -> str | None:
        """Who the request authenticates as; None when it does not."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return "oauth.user" if value == self.token else None
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return None
            known = {self.username: self.password, **self.approvers}
            return user if user in known and known[user] == password else None
        return None

    async def _guard(self, request: Request) -> Response | None:
        self.requests.append((request.method, request.url.path))
        if self._user(request) is None:
            return error(401, "User Not Authenticated", "Required to provide Auth information")
        if request.headers.get("accept", "application/json").split(";")[0] not in (
            "application/json",
            "*/*",
        ):
            return error(406, "Not Acceptable", "only application/json is served")
        if "table" in request.path_params and request.path_params["table"] not in TABLES:
            return error(400, "Invalid table", request.path_params["table"])
        return None

    async def _body(self, request: Request, table: Table) -> dict[str, str] | Response:
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return error(415, "Unsupported Media Type", "send application/json")
        try:
            data = json.loads(await request.body())
        except ValueError:
            return error(400, "Exception while reading request", "body is not JSON")
        if not isinstance(data, dict):
            return error(400, "Exception while reading request", "body is not an object")
        unknown = sorted(set(data) - table.fields)
        if unknown:
            return error(400, "Invalid field", f"unknown or read-only fields: {unknown}")
        for name, value in data.items():
            if not isinstance(value, str):
                return error(400, "Invalid value", f"{name} must be a string")
            if name in table.choices and value not in table.choices[name]:
                return error(400, "Invalid value", f"{name}={value!r} is not a choice")
        return data

    def _write(
        self, name: str, record: dict[str, str], data: dict[str, str], user: str
    ) -> Response | None:
        after = {**record, **{k: v for k, v in data.items() if k not in JOURNAL_FIELDS}}
        resolved = name == "incident" and after["state"] in ("6", "7")
        if resolved and not (after.get("close_code") and after.get("close_notes")):
            return error(403, "Operation Failed", "Data Policy Exception: close_code, close_notes")
        for field_name, value in data.items():
            if field_name in JOURNAL_FIELDS and value:
                self.journal.append(
                    {
                        "sys_id": uuid.uuid4().hex,
                        "element_id": record["sys_id"],
                        "element": field_name,
                        "name": name,
                        "value": value,
                        "sys_created_on": stamp(),
                        "sys_created_by": user,
                        "_seq": f"{next(self._seq):012d}",
                    }
                )
        for field_name, value in after.items():
            if record.get(field_name) != value and "sys_id" in record:
                self.audit.append(
                    {
                        "sys_id": uuid.uuid4().hex,
                        "tablename": name,
                        "documentkey": record["sys_id"],
                        "fieldname": field_name,
                        "oldvalue": record.get(field_name, ""),
                        "newvalue": value,
                        "user": user,
                        "sys_created_on": stamp(),
                        "_seq": f"{next(self._seq):012d}",
                    }
                )
        record.update(after, sys_updated_on=stamp(), sys_updated_by=user)
        if name == "incident":
            record["priority"] = str(int(record["urgency"]) + int(record["impact"]) - 1)
        return None

    async def _records(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        name = request.path_params["table"]
        table, rows = TABLES[name], self.tables[name]
        if request.method == "GET":
            known = table.fields | READ_ONLY | ({"priority"} if name == "incident" else set())
            try:
                found = select(
                    list(rows.values()),
                    request.query_params.get("sysparm_query", ""),
                    known,
                    request.query_params.get("sysparm_limit"),
                )
            except (QueryError, ValueError) as exc:
                return error(400, "Invalid query", str(exc))
            return JSONResponse({"result": found})
        data = await self._body(request, table)
        if isinstance(data, Response):
            return data
        user = self._user(request) or ""
        with self._lock:
            sys_id = uuid.uuid4().hex
            record = {f: "" for f in table.fields - JOURNAL_FIELDS}
            record.update(
                table.defaults,
                sys_id=sys_id,
                number=f"{table.prefix}{next(self._numbers[name]):07d}",
                sys_created_on=stamp(),
                sys_created_by=user,
                _seq=f"{next(self._seq):012d}",
            )
            if (refused := self._write(name, record, data, user)) is not None:
                return refused
            rows[sys_id] = record
        return JSONResponse({"result": public(record)}, status_code=201)

    async def _record(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        name = request.path_params["table"]
        record = self.tables[name].get(request.path_params["sys_id"])
        if record is None:
            return error(404, "No Record found", "Record doesn't exist or ACL restricts it")
        if request.method == "PATCH":
            data = await self._body(request, TABLES[name])
            if isinstance(data, Response):
                return data
            with self._lock:
                refused = self._write(name, record, data, self._user(request) or "")
            if refused is not None:
                return refused
        return JSONResponse({"result": public(record)})

    async def _list(
        self, request: Request, rows: list[dict[str, str]], known: set[str]
    ) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        try:
            found = select(
                rows,
                request.query_params.get("sysparm_query", ""),
                frozenset(known),
                request.query_params.get("sysparm_limit"),
            )
        except (QueryError, ValueError) as exc:
            return error(400, "Invalid query", str(exc))
        return JSONResponse({"result": found})

    async def _journal(self, request: Request) -> Response:
        known = {"sys_id", "element_id", "element", "name", "value", "sys_created_on"}
        return await self._list(request, self.journal, known)

    async def _audit(self, request: Request) -> Response:
        known = {"sys_id", "tablename", "documentkey", "fieldname", "newvalue", "user"}
        return await self._list(request, self.audit, known | {"sys_created_on"})

    async def _attach(self, request: Request) -> Response:
        if (denied := await self._guard(request)) is not None:
            return denied
        params = request.query_params
        missing = [p for p in ("table_name", "table_sys_id", "file_name") if not params.get(p)]
        if missing:
            return error(400, "Invalid parameters", f"missing {missing}")
        if params["table_sys_id"] not in self.tables.get(params["table_name"], {}):
            return error(404, "No Record found", "the record to attach to does not exist")
        content_type = request.headers.get("content-type", "")
        if not content_type:
            return error(400, "Invalid content type", "send the file's Content-Type")
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
                "sys_created_on": stamp(),
                "download_link": f"{request.base_url}api/now/attachment/{sys_id}/file",
                "_seq": f"{next(self._seq):012d}",
            }
            self.attachments[sys_id] = meta
            self.blobs[sys_id] = body
        return JSONResponse({"result": public(meta)}, status_code=201)

    async def _attachment_list(self, request: Request) -> Response:
        known = {"sys_id", "table_name", "table_sys_id", "file_name", "sys_created_on"}
        return await self._list(request, list(self.attachments.values()), known)

    async def _attachment_file(self, request: Request) -> Response:
        self.requests.append((request.method, request.url.path))
        if self._user(request) is None:
            return error(401, "User Not Authenticated", "Required to provide Auth information")
        sys_id = request.path_params["sys_id"]
        if sys_id not in self.blobs:
            return error(404, "No Record found", "attachment does not exist")
        return Response(self.blobs[sys_id], media_type=self.attachments[sys_id]["content_type"])

    def records(self, query: str = "", table: str = "change_request") -> list[dict[str, Any]]:
        """The rows of a table matching an encoded query, for assertions."""
        known = TABLES[table].fields | READ_ONLY | {"priority"}
        return select(list(self.tables[table].values()), query, known, None)
