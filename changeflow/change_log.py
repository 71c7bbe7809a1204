"""The change log a CR carries: each application's commits between what is deployed and what is
coming, with their messages and pull requests.

Which ranges to read is decided here (`planned_change_log`); reading them is I/O
(`blocks.app_history`); the commits read are turned into the CR's entries here
(`change_log`). A pull request is found in a commit's message, the way GitHub and GitLab write
it: `Merge pull request #12`, a squashed `Title (#12)`, or `See merge request group/app!12`. Its
link is built from the repository's URL when a forge is configured (`forge`), in that forge's
form; without one the CR names the number only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from changeflow.change_content import ChangeLogCommit, ChangeLogEntry, PullRequestLink
from changeflow.delta import Delta
from changeflow.models import InventoryEntry
from changeflow.redaction import redact

__all__ = [
    "MAX_COMMITS",
    "Forge",
    "change_log",
    "not_readable_here",
    "planned_change_log",
    "pull_request_link",
    "pull_request_number",
    "web_url",
]

MAX_COMMITS = 50
"""Commits listed per entry; the CR says how many more the range holds."""

Forge = Literal["github", "gitlab"]

_PULL_REQUEST = (
    re.compile(r"^Merge pull request #(\d{1,9})\b", re.MULTILINE),
    re.compile(r"^See merge request [^\s!]*!(\d{1,9})\b", re.MULTILINE),
    re.compile(r"\(#(\d{1,9})\)\s*$", re.MULTILINE),
)
# what a link may hold: a host and a path of plain characters, nothing that could close a
# Markdown link or start another
_SAFE_URL = re.compile(r"^https?://[A-Za-z0-9.\-]+(?::\d+)?(?:/[A-Za-z0-9._~\-]+)+$")
_SCP = re.compile(r"^(?:[A-Za-z0-9._\-]+@)?([A-Za-z0-9.\-]+):(?!//)(.+)$")
_SSH = re.compile(r"^(?:ssh|git\+ssh)://(?:[^@/]+@)?([A-Za-z0-9.\-]+)(?::\d+)?/(.+)$")
# the host of an http(s) or ssh URL, after a user part of RFC 3986's characters only (so
# `https://evil.example#@github.com/` names evil.example, as git reads it)
_HOST = re.compile(
    r"^(?:https?|ssh|git\+ssh)://(?:[A-Za-z0-9._~%!$&'()*+,;=:\-]*@)?([A-Za-z0-9.\-]+)"
    r"(?::\d+)?(?:[/?#]|$)",
    re.IGNORECASE,
)
_MESSAGE_LIMIT = 300


def planned_change_log(
    delta: Delta, previous: Mapping[str, InventoryEntry]
) -> list[ChangeLogEntry]:
    """The ranges a CR's change log covers: each entry of the delta whose commit changes, from
    the commit deployed before (none for a new entry) to the coming one."""
    return [
        ChangeLogEntry(
            entry=name,
            repository_url=entry.repository_url,
            from_commit=previous[name].commit_sha if name in previous else None,
            to_commit=entry.commit_sha,
        )
        for name, entry in sorted(delta.entries.items())
        if name not in previous or previous[name].commit_sha != entry.commit_sha
    ]


def not_readable_here(repository_url: str, hosts: list[str] | None) -> str | None:
    """Why an environment's deploy may not read this repository's commits, or None when it may.

    `hosts` is the environment's `change_log_hosts`: None reads any repository, as the
    inventory names it; a list reads only https, http and ssh repositories on those hosts,
    never a path or `file://` on the worker, whatever an inventory entry says.
    """
    if hosts is None:
        return None
    url = repository_url.strip()
    found = _HOST.match(url) or (None if "://" in url else _SCP.match(url))
    host = found[1].lower() if found else None
    if host in hosts:
        return None
    where = f"its host {host}" if host else "a repository on the worker"
    return f"not read: {where} is not in the environment's change_log_hosts"


def pull_request_number(message: str) -> int | None:
    """The pull request a commit message names, or None."""
    for pattern in _PULL_REQUEST:
        found = pattern.search(message)
        if found:
            return int(found[1])
    return None


def web_url(repository_url: str) -> str | None:
    """The web page of a repository on a forge (`.git` dropped; ssh forms read as https), or
    None when its URL names no such page (a local path, `file://`, anything unusual)."""
    url = repository_url.strip()
    if found := _SSH.match(url) or (None if "://" in url else _SCP.match(url)):
        url = f"https://{found[1]}/{found[2].lstrip('/')}"
    url = url.rstrip("/").removesuffix(".git")
    return url if _SAFE_URL.match(url) else None


def pull_request_link(repository_url: str, number: int, forge: Forge | None) -> PullRequestLink:
    """Pull request `number` of a repository, linked when a forge is configured."""
    page = web_url(repository_url) if forge else None
    if page is None:
        return PullRequestLink(number=number)
    path = "pull" if forge == "github" else "-/merge_requests"
    return PullRequestLink(number=number, url=f"{page}/{path}/{number}")


def _commit(sha: str, message: str, repository_url: str, forge: Forge | None) -> ChangeLogCommit:
    lines = message.strip().splitlines()
    subject = lines[0].strip() if lines else ""
    if len(subject) > _MESSAGE_LIMIT:
        subject = subject[: _MESSAGE_LIMIT - 1] + "…"
    number = pull_request_number(message)
    link = None if number is None else pull_request_link(repository_url, number, forge)
    return ChangeLogCommit(sha=sha, message=subject, pull_request=link)


def change_log(
    planned: list[ChangeLogEntry],
    read: Mapping[str, tuple[list[tuple[str, str]], int] | str],
    forge: Forge | None,
) -> list[ChangeLogEntry]:
    """The CR's change log: each planned entry with its commits, or with why none were read.

    Args:
        planned: `planned_change_log`'s ranges.
        read: entry → ((sha, message) newest first, how many the range holds), or the reason
            its commits could not be read.
        forge: the forge whose form pull request links take; None links none.
    """
    out = []
    for entry in planned:
        got = read.get(entry.entry, "not read")
        if isinstance(got, str):
            out.append(entry.model_copy(update={"error": redact(got)}))
            continue
        commits, total = got
        listed = [_commit(sha, msg, entry.repository_url, forge) for sha, msg in commits]
        listed = listed[:MAX_COMMITS]
        more = total - len(listed)
        out.append(entry.model_copy(update={"commits": listed, "more": more or None}))
    return out
