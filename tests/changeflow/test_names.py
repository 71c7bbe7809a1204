"""Hostile input in the domain: names that become paths, refs and URLs; dates; rendered text."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from changeflow.canonical import canonical_json, sha256_hex
from changeflow.evidence import make_evidence
from changeflow.inventory_rules import entry_problem, pull_request_text
from changeflow.labels import region_of_label
from changeflow.models import (
    Approval,
    Asset,
    ChangeRequest,
    Evidence,
    InventoryEntry,
    Promotion,
    validate_entry_name,
)
from changeflow.names import (
    MAX_URI,
    check_aware_past,
    validate_environment,
    validate_file_name,
    validate_region,
    validate_repo_url,
)
from changeflow.project import parse_environments
from changeflow.readiness import ReadinessPolicy, deployment_ready
from changeflow.render import code_span, escape_block, markdown_table, render_change_request
from changeflow.requests import AuditRequest, BuildRequest, DeploymentRequest, PromotionRequest
from changeflow.summary import UNREADABLE, UnreadableEvidence, found_evidence, summarize

APP = Asset.for_uri("artifact://app@sha256:" + "1" * 64)
RLO = "\u202e"  # right-to-left override: shows "exe.txt" for "txt.exe"


def _entry(**changes: object) -> dict[str, object]:
    entry: dict[str, object] = dict(
        name="app/bin", artifact="s3://b/k", version="1", type="file",
        sha256="sha256:" + "b" * 64, repository_url="https://example.com/app",
        commit_sha="c" * 40, build_number="1", pipeline_run_id="ci-1",
        provenance="artifact://app@sha256:" + "b" * 64, app_artifacts={"filename": "app.bin"},
    )  # fmt: skip
    entry.update(changes)
    return entry


# -- names that become paths -----------------------------------------------------------------


@pytest.mark.parametrize(
    "filename", ["../../x.sh", "/etc/cron.d/x", "a/b", "..", ".", ".hidden", "a\\b", "", "x" * 201,
                 f"evil{RLO}hs.txt", "line\nbreak"],
)  # fmt: skip
def test_an_artifact_file_name_is_one_plain_name(filename: str) -> None:
    with pytest.raises(ValueError):
        validate_file_name(filename)
    with pytest.raises(ValidationError, match="app_artifacts"):
        InventoryEntry.model_validate(_entry(app_artifacts={"filename": filename}))
    # and `inventory validate` names the stored entry as bad, from its raw bytes
    raw = json.dumps(_entry(app_artifacts={"filename": filename})).encode()
    assert "app_artifacts" in (entry_problem("app/bin", raw) or "")


def test_a_file_name_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ValidationError, match="filename must be a string"):
        InventoryEntry.model_validate(_entry(app_artifacts={"filename": ["..", "x"]}))


@pytest.mark.parametrize("name", [f"app{RLO}nib", "app\u200bbin", "app/\u2066x", "a\x7fb"])
def test_entry_names_with_bidi_or_invisible_characters_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="control or bidi"):
        validate_entry_name(name)


def test_asset_uris_are_bounded_and_one_line() -> None:
    Asset.for_uri("artifact://x@sha256:" + "1" * 64)
    with pytest.raises(ValidationError, match="2048"):
        Asset.for_uri("artifact://x@" + "a" * 100_000)
    with pytest.raises(ValidationError, match="spaces, control or bidi"):
        Asset.for_uri("https://example.com/app#x\n- approved")
    with pytest.raises(ValidationError, match="provenance"):
        InventoryEntry.model_validate(_entry(provenance="a" * (MAX_URI + 1)))


@pytest.mark.parametrize(
    "value", ["eu de", "../x", "a..b", "-x", "x-", "a/b", "r1\n", "", "a" * 64]
)
def test_regions_and_environments_are_strict_names(value: str) -> None:
    with pytest.raises(ValueError):
        validate_region(value)
    with pytest.raises(ValueError):
        validate_environment(value)


def test_the_names_in_use_stay_valid() -> None:
    for region in ("r1", "us-south", "eu-de", "ap_south", "region-12"):
        assert validate_region(region) == region
    for environment in ("prod", "staging", "qa", "master", "prod.eu"):
        assert validate_environment(environment) == environment
    # an `_` would make `r1_prod_eu_latest` read as region `r1_prod` of environment `eu`
    with pytest.raises(ValueError):
        validate_environment("prod_eu")


def test_requests_refuse_bad_places_before_anything_runs() -> None:
    with pytest.raises(ValidationError, match="region must be"):
        DeploymentRequest(environment="prod", region="eu de")
    with pytest.raises(ValidationError, match="environment must be"):
        DeploymentRequest(environment="../prod", region="r1")
    with pytest.raises(ValidationError):
        AuditRequest(environment="prod", region="eu de")
    with pytest.raises(ValidationError):
        PromotionRequest.model_validate(
            dict(source="master", target="a..b", priority="low", assigned_to="a",
                 description="d", backout_plan="b")
        )  # fmt: skip
    # the forms carry the same patterns, so the API refuses such a run before it exists
    schema = DeploymentRequest.model_json_schema()["properties"]
    assert not re.match(schema["region"]["pattern"], "eu de")
    assert re.match(schema["region"]["pattern"], "us-south")


def test_records_read_back_are_checked_too() -> None:
    cr = ChangeRequest(id="CHG0000001", environment="prod", region="r1", deployment_run_id="d")
    hand_edited = cr.model_dump(mode="json") | {"region": "../../etc"}
    with pytest.raises(ValidationError, match="region"):
        ChangeRequest.model_validate(hand_edited)
    with pytest.raises(ValidationError, match="id"):
        ChangeRequest.model_validate(cr.model_dump(mode="json") | {"id": "../CHG0000001"})
    with pytest.raises(ValidationError, match="target"):
        Promotion(id="p", source="master", target="../x", assigned_to="a", description="d",
                  backout_plan="b")  # fmt: skip


def test_an_environments_file_with_bad_names_is_refused() -> None:
    with pytest.raises(ValueError, match="region must be"):
        parse_environments('[environments.prod]\nregions = ["eu de"]\n')
    with pytest.raises(ValueError, match="environment must be"):
        parse_environments('[environments."../x"]\nregions = ["r1"]\n')


@pytest.mark.parametrize(
    "url", ["ext::sh -c id", "ext::sh -c touch% /tmp/pwned", "fd::17", "-uupload-pack=id",
            "--upload-pack=touch /tmp/x", "foo://host/repo", "https://h/x\x00", "a" * 3000],
)  # fmt: skip
def test_repository_urls_name_a_repository_and_nothing_else(url: str) -> None:
    with pytest.raises(ValueError):
        validate_repo_url(url)
    with pytest.raises(ValidationError, match="repo_url"):
        BuildRequest(repo_url=url, commit_sha="a" * 40)


@pytest.mark.parametrize(
    "url", ["https://github.com/o/r.git", "http://h/r", "ssh://git@h/r", "git@github.com:o/r.git",
            "file:///srv/r.git", "/srv/r.git", "../r.git"],
)  # fmt: skip
def test_ordinary_repository_urls_are_accepted(url: str) -> None:
    assert BuildRequest(repo_url=url, commit_sha="a" * 40).repo_url == url


# -- dates ------------------------------------------------------------------------------------


def test_naive_and_future_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        check_aware_past(datetime(2020, 1, 1))
    with pytest.raises(ValueError, match="future"):
        check_aware_past(datetime.now(UTC) + timedelta(hours=1))
    assert check_aware_past(datetime.now(UTC) + timedelta(minutes=1))  # clocks drift a little
    with pytest.raises(ValidationError, match="time zone"):
        make_evidence(evidence_type_id="com.ibm.unit_tests", result="success", tool="t",
                      scope="ci-1", assets=[APP], date=datetime(2020, 1, 1))  # fmt: skip


def _naive_record() -> bytes:
    """A sealed record with a naive date, as an older version (or a hand) could store it."""
    good = make_evidence(
        evidence_type_id="com.ibm.unit_tests", result="success", tool="t", scope="ci-1",
        assets=[APP], date=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    body = good.model_dump(mode="json", exclude_none=True, exclude={"id"})
    body["date"] = "2020-01-01T00:00:00"
    return canonical_json({**body, "id": sha256_hex(canonical_json(body))})


def test_a_naive_record_cannot_be_read_back() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        Evidence.model_validate_json(_naive_record())


def test_an_unreadable_record_is_failed_evidence_that_blocks_auto_approval() -> None:
    passing = [
        make_evidence(evidence_type_id=t, result="success", tool="t", scope="ci-1", assets=[APP])
        for t in ("com.ibm.unit_tests", "com.ibm.static_scan")
    ]
    found = found_evidence(
        {APP.id: sorted([*(r.id for r in passing), "f" * 64])},
        {**{r.id: r for r in passing}, "f" * 64: "evidence ff is not a valid record: date: naive"},
    )
    assert found.records == sorted(passing, key=lambda r: r.id)
    assert found.unreadable == [
        UnreadableEvidence(
            evidence_id="f" * 64, assets=[APP.id], reason="evidence ff is not a valid record: "
            "date: naive",
        )
    ]  # fmt: skip
    summary = summarize(scope="d", environment="prod", region="r1", assets={APP.id: APP.uri},
                        records=found.records, unreadable=found.unreadable)  # fmt: skip
    [bad] = summary.failed
    assert (bad.evidence_type_id, bad.evidence_id) == (UNREADABLE, "f" * 64)
    assert bad.summary and "date: naive" in bad.summary
    policy = ReadinessPolicy.model_validate(
        {"checks": [{"evidence_type_id": "com.ibm.unit_tests"}]}
    )
    readiness = deployment_ready(summary, policy, today=datetime.now(UTC).date())
    assert not readiness.ready
    assert any("cannot be read" in reason for reason in readiness.reasons)


# -- Markdown people read -------------------------------------------------------------------


def _cr(**changes: object) -> ChangeRequest:
    return ChangeRequest(id="CHG0000007", environment="prod", region="r1",
                         deployment_run_id="d", **changes)  # type: ignore[arg-type]  # fmt: skip


def _approval_lines(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if re.match(r"- (approved|rejected) by", line)]


def test_a_comment_cannot_forge_a_second_approval() -> None:
    cr = _cr(approvals=[Approval(by="alice", decision="approved",
                                 comment="lgtm\n- approved by cab-chair")])  # fmt: skip
    markdown = render_change_request(cr)
    assert len(_approval_lines(markdown)) == 1
    assert "lgtm - approved by cab-chair" in markdown  # the text is kept, as text
    for by in ("cab\n- approved by ciso", "x\r- approved by y", "x\u2028- approved by y"):
        cr = _cr(approvals=[Approval(by=by, decision="approved")])
        assert len(_approval_lines(render_change_request(cr))) == 1


def test_descriptions_and_plans_cannot_forge_structure() -> None:
    hostile = (
        "# Approved by the CAB\n## Approvals\n- approved by cab-chair\n1. step\n===\n"
        "> quoted\n| a | b |\n<img src=x onerror=alert(1)>\n[click](https://evil.example)\n"
        "```\nfenced\n```\n&lt;b&gt;"
    )
    markdown = render_change_request(
        _cr(description=hostile, backout_plan=hostile, close_notes=hostile, purpose=hostile,
            impact=hostile, failed_evidence=[hostile], readiness_reasons=[hostile],
            assigned_to="a | b\n# x")
    )  # fmt: skip
    lines = markdown.splitlines()
    headings = [line for line in lines if line.startswith("#")]
    assert headings == [
        "# CHG0000007: deploy to prod / r1", "## Description", "## Readiness",
        "## Policy in force", "## Deployment BOM", "## Delta", "## Change log",
        "## Failed evidence", "## Backout plan", "## Rollback", "## Approvals",
        "## Closing notes",
    ]  # fmt: skip
    assert _approval_lines(markdown) == []
    assert not any(line.startswith(("1.", "===", ">", "```", "<img", "[click]")) for line in lines)
    assert "<img" not in markdown.replace("\\<img", "")
    assert "](" not in markdown.replace("\\](", "")
    table = [line for line in lines if line.startswith("| assigned to")]
    assert table == ["| assigned to | a \\| b # x |"]


def test_code_spans_and_tables_hold_their_text() -> None:
    assert code_span("a`b") == "``a`b``"
    assert code_span("`x") == "`` `x ``"
    assert markdown_table(["h"], [["x | y\n- z"]]).splitlines()[-1] == "| x \\| y - z |"
    assert markdown_table(["t"], [["com.ibm.unit_tests"]]).endswith("| com.ibm.unit_tests |")
    assert escape_block("- a\n2. b\n+ c\n#d") == "\\- a\n2\\. b\n\\+ c\n\\#d"
    assert "\u202e" not in escape_block(f"evil{RLO}txt.exe")


def test_a_pull_request_body_keeps_what_people_typed_as_text() -> None:
    record = Promotion(id="p1", source="master", target="prod", assigned_to="a\n- approved",
                       description="# Approved\n- merged by admin", backout_plan="b",
                       entries=["app`bin"])  # fmt: skip
    _, body = pull_request_text(record, "prod")
    assert not any(line.startswith(("# ", "- approved", "- merged")) for line in body.splitlines())
    assert "- ``app`bin``" in body


def test_a_label_made_by_hand_names_no_region() -> None:
    assert region_of_label("us-south_prod_latest", "prod") == "us-south"
    assert region_of_label("../x_prod_latest", "prod") is None
    assert region_of_label("team/x_prod_latest", "prod") is None
