"""Open a promotion as a pull request (GitHub) or merge request (GitLab), over their REST APIs.

- `forge`: what every forge shares: `PullRequest`, `PullRequestError`, the HTTP calls and the
  find-or-open algorithm (look for one already open, else create; a lost race answers with
  the winner's);
- `github`: `GitHubPullRequests`;
- `gitlab`: `GitLabMergeRequests`.

A new forge is one more module with a `Forge` subclass (its `kind`, base URL, headers, find,
create and parse) and one more member of `PullRequestProvider`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from blocks.forges.forge import PullRequest, PullRequestError, PullRequestTimeout
from blocks.forges.github import GitHubPullRequests
from blocks.forges.gitlab import GitLabMergeRequests

__all__ = [
    "GitHubPullRequests",
    "GitLabMergeRequests",
    "PullRequest",
    "PullRequestError",
    "PullRequestProvider",
    "PullRequestTimeout",
]

PullRequestProvider = Annotated[
    GitHubPullRequests | GitLabMergeRequests, Field(discriminator="kind")
]
