"""Tests for changeflow.reports: stored tool outputs, reports the tools make now, edge cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

from changeflow.errors import BadInput
from changeflow.models import EvidenceResult, Severity
from changeflow.reports import ReportFormat, ReportOutcome, Thresholds, parse_report

# a copy of the team's shared real tool outputs, so a clone alone runs the suite
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/tool-outputs/itsdangerous"
BIN = Path(sys.executable).parent
FAILURE, SUCCESS = EvidenceResult.failure, EvidenceResult.success
# Built at run time so secret scanners run over this repository do not flag the test itself.
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
KEY_HEADER = "-----BEGIN RSA " + "PRIVATE KEY-----"
PASSWORD = "hunter2" + "-not-real"


def run_tool(args: Sequence[object], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def by_id(outcome: ReportOutcome) -> dict[str, Severity]:
    return {f.id: f.severity for f in outcome.findings}


# -- the real tool outputs in tests/fixtures ------------------------------------------------


def test_fixture_junit_all_passed() -> None:
    outcome = parse_report("junit", (FIXTURES / "junit.xml").read_bytes())
    assert outcome.result == SUCCESS
    assert outcome.counts == {"tests": 297, "failures": 0, "errors": 0, "skipped": 0}
    assert outcome.summary == "297 tests: 297 passed, 0 failed, 0 errors, 0 skipped"
    assert outcome.findings == []


def test_fixture_bandit_fails_on_high_only_by_default() -> None:
    data = (FIXTURES / "bandit.sarif").read_bytes()
    outcome = parse_report(ReportFormat.sarif, data)
    assert outcome.result == FAILURE
    assert by_id(outcome) == {
        "B324:src/itsdangerous/signer.py:45": Severity.high,
        "B110:src/itsdangerous/timed.py:114": Severity.low,
    }
    assert outcome.counts == {"high": 1, "low": 1}
    assert outcome.summary == "2 findings (1 high, 1 low); failing on critical, high"
    lenient = parse_report("sarif", data, Thresholds(fail_on=[Severity.critical]))
    assert lenient.result == SUCCESS
    assert lenient.summary.endswith("failing on critical")


def test_fixture_sbom_counts_components() -> None:
    data = (FIXTURES / "sbom.cdx.json").read_bytes()
    outcome = parse_report("cyclonedx", data)
    assert outcome.result == SUCCESS
    assert outcome.counts["components"] == len(json.loads(data)["components"]) > 0
    too_many = parse_report("cyclonedx", data, Thresholds(min_components=10_000))
    assert too_many.result == FAILURE


def test_fixture_detect_secrets_never_leaks_hashes() -> None:
    data = (FIXTURES / "detect-secrets.json").read_bytes()
    outcome = parse_report("detect-secrets", data)
    assert outcome.result == FAILURE
    assert len(outcome.findings) == 10
    assert len({f.id for f in outcome.findings}) == 10
    assert "docs/concepts.rst:46:Secret Keyword" in by_id(outcome)
    dumped = outcome.model_dump_json()
    hashes = {s["hashed_secret"] for v in json.loads(data)["results"].values() for s in v}
    assert hashes and not any(h in dumped for h in hashes)


# -- reports the same tools produce now, with failures ----------------------------------------


def test_real_pytest_junit_with_failures_errors_and_skips(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('fixture exploded')\n\n"
        "def test_pass():\n    assert True\n\n"
        "def test_fail():\n    assert 1 == 2, 'one is not two'\n\n"
        "def test_error(broken):\n    pass\n\n"
        "def test_skip():\n    pytest.skip('not today')\n"
    )
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", os.devnull]
    args += ["--rootdir", str(tmp_path), "--confcutdir", str(tmp_path), "-o", "addopts="]
    args += ["-q", "--junitxml=junit.xml"]
    ran = run_tool([*args, "test_sample.py"], tmp_path)
    assert (tmp_path / "junit.xml").exists(), ran.stdout + ran.stderr
    outcome = parse_report("junit", (tmp_path / "junit.xml").read_bytes())
    assert outcome.result == FAILURE
    assert outcome.counts == {"tests": 4, "failures": 1, "errors": 1, "skipped": 1}
    assert outcome.summary == "4 tests: 1 passed, 1 failed, 1 error, 1 skipped"
    messages = {f.id: f.description for f in outcome.findings}
    assert set(messages) == {"test_sample::test_fail", "test_sample::test_error"}
    assert "one is not two" in (messages["test_sample::test_fail"] or "")
    assert "fixture exploded" in (messages["test_sample::test_error"] or "")


def test_real_bandit_sarif_redacts_the_password(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        f"import subprocess\n\nPASSWORD = {PASSWORD!r}\n\n\n"
        "def run(x):\n    subprocess.call(x, shell=True)\n    return eval(input())\n"
    )
    args = [sys.executable, "-m", "bandit", "-q", "-f", "sarif", "-o", "out.sarif", "bad.py"]
    run_tool(args, tmp_path)
    outcome = parse_report("sarif", (tmp_path / "out.sarif").read_bytes())
    assert outcome.result == FAILURE
    severities = {fid.split(":")[0]: sev for fid, sev in by_id(outcome).items()}
    assert severities["B602"] == Severity.high  # shell=True
    assert severities["B307"] == Severity.medium  # eval; bandit leaves out `level` here
    assert severities["B105"] == Severity.low  # hard-coded password
    assert "B602:bad.py:7" in by_id(outcome)
    assert PASSWORD not in outcome.model_dump_json()


def test_real_detect_secrets_scan(tmp_path: Path) -> None:
    (tmp_path / "keys.py").write_text(
        f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\nKEY = """{KEY_HEADER}\nMIIEpAIBAAKCAQEA\n"""\n'
    )
    scan = run_tool([BIN / "detect-secrets", "scan", "keys.py"], tmp_path)
    assert scan.returncode == 0, scan.stderr
    outcome = parse_report("detect-secrets", scan.stdout.encode())
    assert outcome.result == FAILURE
    assert set(by_id(outcome)) == {"keys.py:1:AWS Access Key", "keys.py:2:Private Key"}
    dumped = outcome.model_dump_json()
    hashes = [s["hashed_secret"] for s in json.loads(scan.stdout)["results"]["keys.py"]]
    assert AWS_KEY not in dumped and not any(h in dumped for h in hashes)


def test_real_cyclonedx_py_xml_and_empty_json(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("requests==2.31.0\nurllib3==2.2.1\n")
    (tmp_path / "empty.txt").write_text("")
    tool = [BIN / "cyclonedx-py", "requirements", "--no-validate"]
    run_tool([*tool, "--of", "XML", "-o", "sbom.xml", "requirements.txt"], tmp_path)
    run_tool([*tool, "--of", "JSON", "-o", "empty.json", "empty.txt"], tmp_path)
    # The XML also lists cyclonedx-py itself under metadata/tools: that is no component.
    xml = parse_report("cyclonedx", (tmp_path / "sbom.xml").read_bytes())
    assert (xml.result, xml.counts, xml.summary) == (SUCCESS, {"components": 2}, "2 components")
    empty = parse_report("cyclonedx", (tmp_path / "empty.json").read_bytes())
    assert empty.result == FAILURE
    assert empty.counts == {"components": 0}
    assert empty.summary == "0 components; fewer than the 1 required"


# -- hand-made JUnit ---------------------------------------------------------------------------

SUREFIRE = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="com.example.AppTest" tests="5" failures="1" errors="1" skipped="1">
  <testcase name="adds" classname="com.example.AppTest" time="0.01"/>
  <testcase name="divides" classname="com.example.AppTest">
    <failure message="expected:&lt;2&gt; but was:&lt;3&gt;" type="AssertionError">trace</failure>
  </testcase>
  <testcase name="connects" classname="com.example.AppTest">
    <error type="java.io.IOException"><![CDATA[java.io.IOException: refused
	at App.connect(App.java:10) <!DOCTYPE html> in a page body]]></error>
  </testcase>
  <testcase name="later" classname="com.example.AppTest"><skipped/></testcase>
  <testcase name="flaky" classname="com.example.AppTest">
    <flakyFailure message="first try failed" type="AssertionError"/>
  </testcase>
</testsuite>
"""


def test_surefire_testsuite_root() -> None:
    outcome = parse_report("junit", SUREFIRE)
    assert outcome.result == FAILURE
    assert outcome.counts == {"tests": 5, "failures": 1, "errors": 1, "skipped": 1}
    assert outcome.summary == "5 tests: 2 passed, 1 failed, 1 error, 1 skipped"
    descriptions = {f.id: f.description for f in outcome.findings}
    assert descriptions == {
        "com.example.AppTest::divides": "expected:<2> but was:<3>",
        "com.example.AppTest::connects": "java.io.IOException: refused",  # no message: 1st line
    }


def test_junit_nested_suites_without_classname_and_long_message() -> None:
    data = (
        '<testsuites><testsuite name="outer"><testsuite name="math">'
        '<testcase name="ok"/><testcase name="bad"><failure message="{}"/></testcase>'
        "</testsuite></testsuite></testsuites>"
    ).format("x" * 2000)
    outcome = parse_report("junit", data.encode())
    assert outcome.result == FAILURE
    [finding] = outcome.findings
    assert finding.id == "math::bad"
    assert finding.severity == Severity.high
    assert len(finding.description or "") == 500


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<testsuites/>", "no tests ran"),
        (b'<testsuite tests="1"><testcase name="a"><skipped/></testcase></testsuite>', "no tests"),
        (b'<testsuite failures="2"><testcase name="a"/></testsuite>', "report 2 failures"),
    ],
)
def test_junit_that_proves_nothing_fails(data: bytes, reason: str) -> None:
    outcome = parse_report("junit", data)
    assert outcome.result == FAILURE
    assert reason in outcome.summary


def test_junit_declared_encoding_is_honoured() -> None:
    data = '<?xml version="1.0" encoding="ISO-8859-1"?><testsuite><testcase name="ma\xf1ana"/>'
    outcome = parse_report("junit", (data + "</testsuite>").encode("latin-1"))
    assert outcome.result == SUCCESS
    assert outcome.counts["tests"] == 1


# -- hand-made SARIF ---------------------------------------------------------------------------

OTHER_TOOL_SARIF = {
    "version": "2.1.0",
    "runs": [
        {
            "tool": {
                "driver": {
                    "name": "semgrep-like",
                    "rules": [
                        {"id": "default-note", "defaultConfiguration": {"level": "note"}},
                        {"id": "scored", "properties": {"security-severity": "9.8"}},
                    ],
                }
            },
            "artifacts": [{"location": {"uri": "src/by_index.py"}}],
            "results": [
                {
                    "ruleId": "sql-injection",
                    "level": "error",
                    "message": {"text": "SQL built from user input"},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": "app/db.py"},
                                "region": {"startLine": 12},
                            }
                        }
                    ],
                },
                {"ruleId": "no-level", "message": {"text": "warning by default"}},
                {"ruleId": "default-note", "ruleIndex": 0, "message": {"text": "x"}},
                {
                    "ruleId": "scored",
                    "message": {"text": "{0} is weak"},
                    "locations": [{"physicalLocation": {"artifactLocation": {"index": 0}}}],
                },
                {"ruleId": "passed-check", "kind": "pass", "message": {"text": "fine"}},
                {
                    "ruleId": "waived",
                    "level": "error",
                    "message": {"text": "accepted risk"},
                    "suppressions": [{"kind": "external", "status": "accepted"}],
                },
                {"ruleId": "gone", "level": "error", "baselineState": "absent", "message": {}},
            ],
        }
    ],
}


def test_sarif_from_another_tool() -> None:
    outcome = parse_report("sarif", json.dumps(OTHER_TOOL_SARIF).encode())
    assert by_id(outcome) == {
        "sql-injection:app/db.py:12": Severity.high,
        "no-level:unknown:0": Severity.medium,
        "default-note:unknown:0": Severity.low,
        "scored:src/by_index.py:0": Severity.critical,
        "waived:unknown:0": Severity.high,
        "gone:unknown:0": Severity.high,
    }
    assert outcome.result == FAILURE
    assert outcome.counts == {
        "critical": 1,
        "high": 3,
        "medium": 1,
        "low": 1,
        "exempt": 1,
        "fixed": 1,
    }
    findings = {f.id: f for f in outcome.findings}
    assert findings["waived:unknown:0"].has_exempt
    assert findings["gone:unknown:0"].found_status == "fixed"
    # With the real problems gone, the waived and the fixed ones alone do not fail the check.
    results = OTHER_TOOL_SARIF["runs"][0]["results"][-2:]  # type: ignore[index]
    only_waived = {"runs": [{"tool": {"driver": {"name": "t"}}, "results": results}]}
    assert parse_report("sarif", json.dumps(only_waived).encode()).result == SUCCESS


def test_sarif_failed_tool_run_fails_even_without_results() -> None:
    sarif = {"runs": [{"invocations": [{"executionSuccessful": False}], "results": []}]}
    outcome = parse_report("sarif", json.dumps(sarif).encode())
    assert outcome.result == FAILURE
    assert outcome.summary == "0 findings; failing on critical, high; tool run did not complete"
    assert parse_report("sarif", b'{"runs": []}').result == SUCCESS


# -- hand-made CycloneDX -----------------------------------------------------------------------

CDX_XML = b"""<?xml version="1.0"?>
<bom xmlns="http://cyclonedx.org/schema/bom/1.4" version="1">
  <metadata><component type="application"><name>app</name></component></metadata>
  <components>
    <component type="library"><name>flask</name><version>3.0.0</version>
      <components><component type="library"><name>vendored</name></component></components>
    </component>
  </components>
  <vulnerabilities>
    <vulnerability bom-ref="v1"><id>CVE-2099-0001</id>
      <ratings><rating><score>7.5</score></rating></ratings>
      <description>Request smuggling</description>
      <affects><target><ref>pkg:pypi/flask@3.0.0</ref></target></affects>
    </vulnerability>
  </vulnerabilities>
</bom>
"""


def test_cyclonedx_xml_nested_components_and_vulnerability() -> None:
    outcome = parse_report("cyclonedx", CDX_XML)
    assert outcome.counts == {"components": 2, "high": 1}
    assert outcome.result == FAILURE
    [finding] = outcome.findings
    assert finding.id == "CVE-2099-0001:pkg:pypi/flask@3.0.0"
    assert finding.description == "Request smuggling (affects pkg:pypi/flask@3.0.0)"
    lenient = parse_report("cyclonedx", CDX_XML, Thresholds(fail_on=[Severity.critical]))
    assert lenient.result == SUCCESS
    assert lenient.summary == "2 components; 1 vulnerability (1 high); failing on critical"


def test_cyclonedx_json_vulnerabilities_take_the_worst_rating() -> None:
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "components": [{"name": "a", "components": [{"name": "b"}]}, {"name": "c"}],
        "vulnerabilities": [
            {"id": "GHSA-1", "ratings": [{"severity": "low"}, {"severity": "critical"}]},
            {"id": "GHSA-2", "ratings": [{"severity": "unknown"}]},
        ],
    }
    outcome = parse_report("cyclonedx", json.dumps(bom).encode())
    assert outcome.result == FAILURE
    assert by_id(outcome) == {"GHSA-1": Severity.critical, "GHSA-2": Severity.medium}
    assert outcome.counts == {"components": 3, "critical": 1, "medium": 1}


def test_empty_sbom_fails_unless_allowed() -> None:
    empty = b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}'
    assert parse_report("cyclonedx", empty).result == FAILURE
    assert parse_report("cyclonedx", empty, Thresholds(min_components=0)).result == SUCCESS


# -- hand-made detect-secrets ------------------------------------------------------------------


def test_detect_secrets_audited_baseline() -> None:
    fake_hash = "ab" * 20
    secret = {"filename": "a.py", "hashed_secret": fake_hash, "line_number": 3}
    baseline = {
        "results": {
            "a.py": [
                {**secret, "type": "Secret Keyword", "is_secret": False},
                {**secret, "type": "AWS Access Key", "line_number": 9, "is_verified": True},
            ]
        }
    }
    outcome = parse_report("detect-secrets", json.dumps(baseline).encode())
    assert outcome.result == FAILURE
    assert by_id(outcome) == {
        "a.py:3:Secret Keyword": Severity.high,
        "a.py:9:AWS Access Key": Severity.critical,
    }
    assert fake_hash not in outcome.model_dump_json()
    baseline["results"]["a.py"].pop()
    audited = parse_report("detect-secrets", json.dumps(baseline).encode())
    assert audited.result == SUCCESS
    assert audited.findings[0].has_exempt
    assert audited.counts == {"high": 1, "exempt": 1}
    clean = parse_report("detect-secrets", b'{"version": "1.5.0", "results": {}}')
    assert (clean.result, clean.findings) == (SUCCESS, [])


# -- what cannot be parsed ---------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<testsuite><testcase name="&lol2;"/></testsuite>"""


@pytest.mark.parametrize("fmt", list(ReportFormat))
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"  \n",
        b"not json",
        b"<testsuite><testcase name='a'>",
        b'{"bomFormat": "CycloneDX"',
        b"[1, 2]",
        b'{"runs": "x", "results": [], "bomFormat": "SPDX"}',
        b"<html><body/></html>",
        BILLION_LAUGHS,
        b'<?xml version="1.0"?><!-- hi --><!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>',
    ],
)
def test_unparseable_reports_fail(fmt: ReportFormat, data: bytes) -> None:
    outcome = parse_report(fmt, data)
    assert outcome.result == FAILURE
    assert outcome.summary.startswith(f"unparseable {fmt.value} report: ")
    assert "\n" not in outcome.summary


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("cyclonedx", b'{"bomFormat": "CycloneDX", "components": [{"name": "a"}]}'),
        ("cyclonedx", b'<bom xmlns="http://cyclonedx.org/schema/bom/2.0"/>'),
        ("sarif", b'{"runs": [{"results": [1, 2]}]}'),
        ("detect-secrets", b'{"results": {"a.py": [{"type": "Secret Keyword"}]}}'),
        ("junit", b'<?xml version="1.0" encoding="no-such-codec"?><testsuite/>'),
    ],
)
def test_wrong_structure_is_unparseable(fmt: str, data: bytes) -> None:
    outcome = parse_report(fmt, data)
    assert outcome.result == FAILURE
    assert outcome.summary.startswith(f"unparseable {fmt} report: ")


def test_unknown_format_and_thresholds_are_rejected() -> None:
    with pytest.raises(BadInput, match="junit, sarif, cyclonedx, detect-secrets"):
        parse_report("spdx", b"{}")
    with pytest.raises(ValidationError):
        Thresholds(fail_on=[Severity.high], max_findings=3)  # type: ignore[call-arg]


def test_dtd_is_refused_before_parsing() -> None:
    outcome = parse_report("junit", BILLION_LAUGHS)
    assert outcome.summary == (
        "unparseable junit report: DOCTYPE and ENTITY declarations are not allowed"
    )
    truncated = parse_report("junit", b"<testsuite><testcase name='a'>")
    assert truncated.summary.startswith("unparseable junit report: bad XML: no element found")


EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b'<testsuite><testcase name="&e;"/></testsuite>'
)
PARAMETER_ENTITY = b'<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><testsuite/>'
UTF16_DTD = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><testsuite/>'


@pytest.mark.parametrize("fmt", [ReportFormat.junit, ReportFormat.cyclonedx])
@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY, UTF16_DTD.encode("utf-16")],
    ids=["entity-bomb", "external-entity", "parameter-entity", "dtd-in-utf-16"],
)
def test_every_xml_format_refuses_a_dtd_whatever_the_encoding(
    fmt: ReportFormat, data: bytes
) -> None:
    outcome = parse_report(fmt, data)
    assert outcome.result == FAILURE
    assert outcome.summary == (
        f"unparseable {fmt.value} report: DOCTYPE and ENTITY declarations are not allowed"
    )


def test_an_entity_never_declared_is_bad_xml_not_a_lookup() -> None:
    outcome = parse_report("junit", b'<testsuite><testcase name="&passwd;"/></testsuite>')
    assert outcome.result == FAILURE
    assert outcome.summary.startswith("unparseable junit report: bad XML: undefined entity")


def test_junit_in_utf16_with_a_bom_is_read() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?><testsuite><testcase name="a"/></testsuite>'
    outcome = parse_report("junit", data.encode("utf-16"))
    assert (outcome.result, outcome.counts["tests"]) == (SUCCESS, 1)
