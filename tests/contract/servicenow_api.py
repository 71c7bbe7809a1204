"""The documented shapes the ServiceNow fake serves: its tables, encoded queries and errors.

Field names, choice values and number prefixes follow ServiceNow's base system; the query
syntax is the Table API's encoded query (`field=value` terms joined by `^`, `^OR` binding
tighter than `^`, `ORDERBY<field>`, `ORDERBYDESC<field>`). See `servicenow_fake.py` for the server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.responses import JSONResponse

__all__ = [
    "CHANGE_FIELDS",
    "INCIDENT_FIELDS",
    "JOURNAL_FIELDS",
    "READ_ONLY",
    "TABLES",
    "QueryError",
    "Table",
    "error",
    "parse_query",
    "public",
    "random_secret",
    "select",
    "stamp",
]

JOURNAL_FIELDS = frozenset({"work_notes", "comments"})
_COMMON = frozenset(
    {"short_description", "description", "state", "close_code", "close_notes", "category",
     "correlation_id", "correlation_display", *JOURNAL_FIELDS}
)  # fmt: skip
# Writable fields the client may send (a subset of the real tables' columns).
CHANGE_FIELDS = _COMMON | {
    "type", "priority", "justification", "risk_impact_analysis", "implementation_plan",
    "backout_plan", "test_plan", "start_date", "end_date", "approval",
}  # fmt: skip
INCIDENT_FIELDS = _COMMON | {"urgency", "impact", "due_date", "caller_id"}
READ_ONLY = frozenset(
    {"sys_id", "number", "sys_created_on", "sys_updated_on", "sys_created_by", "sys_updated_by"}
)
_LEVELS = {"1", "2", "3"}
# The close codes of the base system's incident form ("Resolution code").
INCIDENT_CLOSE_CODES = {
    "Solved (Work Around)", "Solved (Permanently)", "Solved Remotely (Work Around)",
    "Solved Remotely (Permanently)", "Not Solved (Not Reproducible)", "Not Solved (Too Costly)",
    "Closed/Resolved by Caller",
}  # fmt: skip


@dataclass(frozen=True)
class Table:
    """One table the fake serves: its number prefix, writable fields, choices and defaults."""

    prefix: str
    fields: frozenset[str]
    choices: dict[str, set[str]]
    defaults: dict[str, str]


TABLES = {
    "change_request": Table(
        "CHG",
        CHANGE_FIELDS,
        {
            "state": {"-5", "-4", "-3", "-2", "-1", "0", "3", "4"},
            "type": {"standard", "normal", "emergency"},
            "priority": {"1", "2", "3", "4", "5"},
            "close_code": {"", "successful", "successful_issues", "unsuccessful"},
            "approval": {"not requested", "requested", "approved", "rejected"},
        },
        {"state": "-5", "type": "normal", "priority": "4", "approval": "not requested"},
    ),
    "incident": Table(
        "INC",
        INCIDENT_FIELDS,
        {
            "state": {"1", "2", "3", "6", "7", "8"},
            "urgency": _LEVELS,
            "impact": _LEVELS,
            "close_code": {"", *INCIDENT_CLOSE_CODES},
        },
        {"state": "1", "urgency": "3", "impact": "3"},
    ),
}


def error(status: int, message: str, detail: str = "") -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "detail": detail}, "status": "failure"}, status_code=status
    )


def random_secret() -> str:
    return uuid.uuid4().hex


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class QueryError(ValueError):
    """A sysparm_query the fake cannot parse."""


_OPERATORS = ("LIKE", "STARTSWITH", "NOT IN", "IN", "=")
Term = tuple[str, str, str]
Condition = list[Term]
"""Terms joined by `^OR`: one matches (`a^b^ORc` is a AND (b OR c), as ServiceNow reads it)."""


def _term(term: str, known: frozenset[str]) -> Term:
    """One `field<operator>value` term (operators: `=`, `IN`, `NOT IN`, `STARTSWITH`, `LIKE`:
    contains, ignoring case)."""
    for operator in _OPERATORS:
        name, sep, value = term.partition(operator)
        if sep and name and name.isidentifier():
            if name not in known:
                raise QueryError(f"unknown field {name!r} in query")
            return name, operator, value
    raise QueryError(f"unsupported query term {term!r}")


def parse_query(query: str, known: frozenset[str]) -> tuple[list[Condition], list[str]]:
    """Parse an encoded query into conditions (each one or more (field, operator, value)
    terms joined by `^OR`) and order-by fields.

    Order fields are returned as `field` or `-field` (descending).

    Raises:
        QueryError: for another operator, an unknown field, or `^OR` with nothing before it.
    """
    terms: list[Condition] = []
    order: list[str] = []
    for term in query.split("^") if query else []:
        if term.startswith("ORDERBYDESC"):
            name, desc = term.removeprefix("ORDERBYDESC"), True
        elif term.startswith("ORDERBY"):
            name, desc = term.removeprefix("ORDERBY"), False
        elif term.startswith("OR"):
            if not terms:
                raise QueryError(f"{term!r}: ^OR with no condition before it")
            terms[-1].append(_term(term.removeprefix("OR"), known))
            continue
        else:
            terms.append([_term(term, known)])
            continue
        if name not in known:
            raise QueryError(f"unknown order field {name!r}")
        order.append(f"-{name}" if desc else name)
    return terms, order


def _matches(row: dict[str, str], term: Term) -> bool:
    name, operator, value = term
    got = row.get(name, "")
    if operator == "STARTSWITH":
        return got.startswith(value)
    if operator == "LIKE":
        return value.casefold() in got.casefold()
    if operator in ("IN", "NOT IN"):
        return (got in value.split(",")) == (operator == "IN")
    return got == value


def select(
    rows: list[dict[str, str]], query: str, known: frozenset[str], limit: str | None
) -> list[dict[str, str]]:
    terms, order = parse_query(query, known)
    found = [r for r in rows if all(any(_matches(r, t) for t in c) for c in terms)]
    for key in reversed(order):
        name = key.lstrip("-")
        found.sort(key=lambda r, n=name: (r.get(n, ""), r.get("_seq", "")), reverse=key[0] == "-")
    if limit is not None:
        found = found[: int(limit)]
    return [public(r) for r in found]


def public(record: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in record.items() if not k.startswith("_")}
