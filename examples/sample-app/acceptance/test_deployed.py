"""Acceptance tests: run against the installed copy, after each deployment."""

import json
import os
import sys
from pathlib import Path

import pytest

DEPLOYED = json.loads(Path("deployed.json").read_text())


@pytest.fixture(scope="module")
def app():
    sys.path.insert(0, str(Path(DEPLOYED["target"]) / "site"))
    import sample_app

    yield sample_app
    sys.path.pop(0)


def test_installed_where_the_change_request_says(app):
    assert Path(app.__file__).is_relative_to(DEPLOYED["target"])
    assert DEPLOYED["change_request"] == os.environ["CHANGEFLOW_CHANGE_REQUEST"]


def test_greets(app):
    assert app.greet("release manager").endswith("release manager!")
