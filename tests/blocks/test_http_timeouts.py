"""A web service that accepts connections and never answers: ServiceNow and forge calls end.

Each client is given a 2 s bound (the blocks' default, 30 s, is checked without waiting it out);
each test's timeout is the bound the issue asks for (60 s); nothing asserts a duration beyond
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
        instance_url=f"http://{silent}", username="api", password=SecretStr("pw"), timeout=2
    )
    assert type(block).model_fields["timeout"].default == 30
    with pytest.raises(ServiceTimeout) as info:
        block.list()
    message = str(info.value)
    assert "\n" not in message and silent in message and "no answer within 2 s" in message


@pytest.mark.timeout(60)
def test_a_forge_call_ends(silent: str) -> None:
    client = GitLabMergeRequests(
        project="acme/inventory",
        token=SecretStr("glpat-secret"),
        api_url=f"http://{silent}",
        timeout=2,
    )
    assert type(client).model_fields["timeout"].default == 30
    with pytest.raises(PullRequestTimeout) as info:
        client.open("promotion/prod/1", "prod", "t", "b")
    message = str(info.value)
    assert "\n" not in message and "no answer within 2 s" in message
    assert "glpat-secret" not in message
