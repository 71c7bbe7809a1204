"""A web service that accepts connections and never answers: ServiceNow and forge calls end.

Each test's timeout is the bound (60 s, as the issue asks); nothing asserts a duration beyond
"it ended". The silent server is the `silent` fixture of tests/conftest.py. A file of its own,
so the suite's workers wait for these beside the store and git timeouts, not after them.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from blocks.forges import GitLabMergeRequests, PullRequestTimeout
from blocks.servicenow import ServiceNowChangeManagement
from changeflow.errors import ServiceTimeout


@pytest.mark.timeout(60)
def test_a_servicenow_call_ends(silent: str) -> None:
    block = ServiceNowChangeManagement(
        instance_url=f"http://{silent}", username="api", password=SecretStr("pw")
    )
    with pytest.raises(ServiceTimeout) as info:
        block.list()
    message = str(info.value)
    assert "\n" not in message and silent in message and "no answer within 30 s" in message


@pytest.mark.timeout(60)
def test_a_forge_call_ends(silent: str) -> None:
    client = GitLabMergeRequests(
        project="acme/inventory", token=SecretStr("glpat-secret"), api_url=f"http://{silent}"
    )
    with pytest.raises(PullRequestTimeout) as info:
        client.open("promotion/prod/1", "prod", "t", "b")
    message = str(info.value)
    assert "\n" not in message and "no answer within 30 s" in message
    assert "glpat-secret" not in message
