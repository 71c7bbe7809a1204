"""What a CR carries about where its delta came from: the commit and promotion that brought
each entry, a promotion's pull request, and each application's change log.

Plain records with no other domain import, so `changeflow.models` holds them on a promotion
and on a CR. Every new field is None when unset, so a record written before stays the same
JSON (and the same digest) when read and written again.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from changeflow.redaction import redact

__all__ = ["Arrival", "ChangeLogCommit", "ChangeLogEntry", "PullRequestLink"]


class PullRequestLink(BaseModel):
    """A pull (or merge) request: its number, and where people open it when that is known.

    Attributes:
        number: the PR number (GitHub) or the MR's `iid` (GitLab).
        url: its page; None when no forge is configured to build it from.
    """

    model_config = ConfigDict(extra="forbid")

    number: int = Field(ge=1)
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _redact(cls, value: str | None) -> str | None:
        return None if value is None else redact(value)


class Arrival(BaseModel):
    """How one entry of a delta reached its environment.

    Attributes:
        entry: the entry's name (changed, added or deleted).
        commit: the environment branch's commit that last changed it.
        promotion: the id of the promotion that commit merged; None when the entry was written
            straight to the environment branch.
    """

    model_config = ConfigDict(extra="forbid")

    entry: str
    commit: str = Field(pattern=r"^[0-9a-f]{40,64}$")
    promotion: str | None = None


class ChangeLogCommit(BaseModel):
    """One commit of an application between what is deployed and what is coming.

    Attributes:
        sha: the commit.
        message: the first line of its message.
        pull_request: the pull request its message names (`(#12)`, `Merge pull request #12`,
            `See merge request group/app!12`), if any.
    """

    model_config = ConfigDict(extra="forbid")

    sha: str
    message: str
    pull_request: PullRequestLink | None = None


class ChangeLogEntry(BaseModel):
    """One entry's application commits: from the deployed commit to the coming one.

    Attributes:
        commits: newest first, at most `changeflow.change_log.MAX_COMMITS`; None when they
            were not read (a CR filed before change logs were read).
        more: how many more commits the range holds beyond those listed.
        error: why the commits could not be read (the deploy goes on without them).
    """

    model_config = ConfigDict(extra="forbid")

    entry: str
    repository_url: str
    from_commit: str | None = None
    to_commit: str
    commits: list[ChangeLogCommit] | None = None
    more: int | None = Field(default=None, ge=1)
    error: str | None = None

    # a CR is read by people: whatever an older entry held, no credentials reach it
    _redact_url = field_validator("repository_url")(redact)

    @field_validator("error")
    @classmethod
    def _redact_error(cls, value: str | None) -> str | None:
        return None if value is None else redact(value)
