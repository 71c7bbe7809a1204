"""Credentials in URLs and the environments file's pass_env/secrets: pure rules, plain pytest."""

from __future__ import annotations

import re

import pytest

from changeflow.errors import BadInput
from changeflow.project import parse_environments
from changeflow.redaction import URL_WITHOUT_CREDENTIALS, has_credentials, hide, redact

WITH = [
    "https://bot:TOKEN@git.example/org/app.git",
    "https://TOKEN@github.com/org/app",
    "HTTP://user@host/x",
    "ssh://bot:TOKEN@git.example/org/app.git",
    " https://bot:TOKEN@git.example/x",
]
WITHOUT = [
    "https://git.example/org/app.git",
    "ssh://git@git.example/org/app.git",
    "git@git.example:org/app.git",
    "file:///srv/git/app.git",
    "/srv/git/app.git",
    "https://git.example/org/app@v1",
]


@pytest.mark.parametrize("url", WITH)
def test_a_url_with_credentials_is_found_and_refused_by_the_schema_pattern(url: str) -> None:
    assert has_credentials(url)
    assert not re.search(URL_WITHOUT_CREDENTIALS, url)
    assert "TOKEN" not in redact(url)


@pytest.mark.parametrize("url", WITHOUT)
def test_a_url_without_credentials_passes(url: str) -> None:
    assert not has_credentials(url)
    assert re.search(URL_WITHOUT_CREDENTIALS, url)


def test_hide_replaces_secret_values_and_url_credentials() -> None:
    text = "token=abc123 and abc1234 at https://u:pw@host/x"
    assert hide(text, ["abc123", "abc1234", ""]) == "token=*** and *** at https://***@host/x"


ENV = '[environments.prod]\nregions = ["r1"]\n'


def test_an_environment_names_what_its_commands_also_get() -> None:
    spec = parse_environments(
        ENV + 'pass_env = ["KUBECONFIG"]\n[environments.prod.secrets]\nKUBE_TOKEN = "kube-token"\n'
    ).get("prod")
    assert spec.pass_env == ["KUBECONFIG"] and spec.secrets == {"KUBE_TOKEN": "kube-token"}


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ('pass_env = ["CHANGEFLOW_S3_SECRET_KEY"]', "pipeline's own configuration"),
        ('pass_env = ["PREFECT_API_URL"]', "pipeline's own configuration"),
        ('pass_env = ["PATH"]', "pipeline's own configuration"),
        ('pass_env = ["A B"]', "not an environment variable name"),
        ('secrets = { PREFECT_API_KEY = "k" }', "pipeline's own configuration"),
        ('secrets = { TOKEN = "Not A Block" }', "not a Secret block name"),
        ('pass_env = ["TOKEN"]\nsecrets = { TOKEN = "t" }', "both passed and a secret"),
    ],
)
def test_the_pipelines_own_variables_are_never_passed(extra: str, reason: str) -> None:
    with pytest.raises(BadInput, match=reason):
        parse_environments(ENV + extra + "\n")
