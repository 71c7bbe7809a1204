"""Issue 12, the offline audit package on the real stack: exported from the SeaweedFS locker
and a bare git remote, verified offline; attack 7 (one flipped byte in any file), the signed
manifest (a file rewritten with its hash, a package re-signed by an attacker's key, an unsigned
one) and bad input. The package is exported once per module; each test checks its own copy."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from audit_support import History
from typer.testing import CliRunner

from blocks.audit_export import export_package, hash_files
from blocks.audit_verify import check_package
from blocks.memory import MemoryIncidents, MemoryInventory
from blocks.memory.changes import MemoryChangeManagement
from blocks.signing import StatementSigner, Trust, new_key, open_envelope, public_key
from blocks.stores import use_stores
from changeflow.audit_package import (
    AUDIT_PACKAGE,
    MANIFEST,
    MANIFEST_ENVELOPE,
    Manifest,
    manifest_statement,
)
from changeflow.canonical import digest
from changeflow.errors import BadInput
from changeflow.models import utcnow
from changeflow.ports import Stores
from changeflow.trust import TrustPolicy, render_trust
from cli import app

UNSIGNED = f"package: manifest.signed: the manifest is not signed ({MANIFEST_ENVELOPE} is missing)"


def _export(h: History, out: Path, signer: StatementSigner | None = None) -> Manifest:
    s, cr = h.signed, h.cr("passing")
    data = s.trust_file.read_bytes()
    return export_package(s.stores, [cr], cr.id, out, (Trust(data), data), signer or s.deploy)


@pytest.fixture(scope="module")
def exported(history: History, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "package"
    _export(history, out)
    return out


@pytest.fixture
def package(exported: Path, tmp_path: Path) -> Path:
    """A copy of the module's package, for a test to alter."""
    return Path(shutil.copytree(exported, tmp_path / "package"))


def _rewrite(package: Path, manifest: Manifest) -> None:
    (package / MANIFEST).write_text(manifest.model_dump_json(indent=2))


def test_a_package_verifies_offline_and_its_page_shows_the_cr(
    history: History, package: Path
) -> None:
    files = sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file())
    for part in ("history.git.bundle", "trust.toml", "changes/", "summaries/", "evidence/",
                 "attachments/", "envelopes/evidence/", "envelopes/decisions/", "checkpoints/",
                 "keys/", "index.html", MANIFEST, MANIFEST_ENVELOPE):  # fmt: skip
        assert any(f.startswith(part) for f in files), part
    report = check_package(package)
    assert report.problems == [] and report.checked >= 8
    assert report.signed_by == "deploy"
    # the manifest is an in-toto statement the deploy key signed: every other file a subject
    opened = open_envelope((package / MANIFEST_ENVELOPE).read_bytes(), history.signed.trust)
    assert opened.keyids == {history.signed.deploy.keyid}
    subjects = {s["name"]: "sha256:" + s["digest"]["sha256"] for s in opened.statement["subject"]}
    assert subjects == hash_files(package) and len(subjects) == len(files) - 2
    page = (package / "index.html").read_text()
    cr = report.crs[0]
    assert cr.id in page and cr.evidence_summary_sha256 in page and "PASSED" in page
    assert "Every signature and hash verified" in page


def test_attack_7_one_flipped_byte_in_any_file_fails_verification(package: Path) -> None:
    files = sorted(p for p in package.rglob("*") if p.is_file())
    for path in files:
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        try:
            report = check_package(package)
        finally:
            path.write_bytes(original)
        assert report.problems, f"a flipped byte in {path.relative_to(package)} went unnoticed"
    assert check_package(package).problems == []


def test_a_file_rewritten_with_its_hash_in_the_manifest_is_refused_by_the_signature(
    package: Path,
) -> None:
    """The page is reached from no signed root: only the manifest's signature covers it."""
    page = package / "index.html"
    page.write_text(page.read_text().replace("PASSED", "PASSED, reviewed by the board"))
    manifest = Manifest.model_validate_json((package / MANIFEST).read_bytes())
    manifest.files["index.html"] = digest(page.read_bytes())
    _rewrite(package, manifest)
    assert check_package(package).problems == [
        f"package: manifest.signed: {MANIFEST} is not the manifest its signature covers",
        "package: index.html was altered",
    ]


def test_a_package_re_signed_by_an_attackers_key_is_refused_against_the_auditors_trust(
    history: History, package: Path
) -> None:
    """Whoever holds the package holds its trust.toml: `--trust` is the auditor's own."""
    s = history.signed
    mallory = new_key()
    since = utcnow() - timedelta(days=1)
    theirs = TrustPolicy(
        keys=[*s.trust.keys, public_key(mallory, name="mallory", signs=[AUDIT_PACKAGE],
                                        not_before=since)]
    )  # fmt: skip
    data = render_trust(theirs).encode()
    (package / "trust.toml").write_bytes(data)
    page = package / "index.html"
    page.write_text(page.read_text().replace("PASSED", "PASSED, reviewed by the board"))
    manifest = Manifest.model_validate_json((package / MANIFEST).read_bytes())
    manifest.files, manifest.trust_sha256 = hash_files(package), digest(data)
    _rewrite(package, manifest)
    signed = StatementSigner(mallory).sign(manifest_statement(manifest))
    (package / MANIFEST_ENVELOPE).write_bytes(signed)
    # a consistent forgery: by its own trust file the package holds
    assert check_package(package).problems == []
    assert check_package(package).signed_by == "mallory"
    problems = check_package(package, s.trust_file).problems
    assert problems == [
        "package: manifest.signed: no valid signature by a key the trust file names "
        "(judged by your trust file)",
        "package: the trust file is not the one it was exported with",
    ]


def test_a_trust_file_of_the_auditors_own_that_differs_is_named(
    history: History, package: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.toml"
    other.write_text("version = 1\n")
    report = check_package(package, other)
    assert "package: the trust file is not the one it was exported with" in report.problems
    assert check_package(package, history.signed.trust_file).problems == []


def test_an_unsigned_or_stripped_package_is_refused(history: History, package: Path) -> None:
    (package / MANIFEST_ENVELOPE).unlink()
    assert check_package(package).problems == [UNSIGNED]
    # without its trust file nothing would be judged: the CRs say they were decided under one
    (package / "trust.toml").unlink()
    manifest = Manifest.model_validate_json((package / MANIFEST).read_bytes())
    manifest.files = hash_files(package)
    _rewrite(package, manifest)
    assert check_package(package).problems == [
        "package: trust.toml is missing, and its CRs were decided under a trust file"
    ]
    assert UNSIGNED in check_package(package, history.signed.trust_file).problems


def test_the_command_line_exports_and_verifies_and_refuses_bad_input(
    history: History, tmp_path: Path
) -> None:
    cr = history.cr("passing")
    runner = CliRunner()
    out = tmp_path / "cli-package"
    done = runner.invoke(app, ["audit", "verify", str(tmp_path / "nothing")])
    assert done.exit_code != 0
    with use_stores(history.signed.stores):  # the module's locker and remote
        done = runner.invoke(app, ["audit", "export", cr.id, "--output", str(out)])
    assert done.exit_code == 0, done.output
    assert f"exported {cr.id}" in done.output
    trust = str(history.signed.trust_file)
    done = runner.invoke(app, ["audit", "verify", str(out), "--trust", trust])
    assert done.exit_code == 0, done.output
    assert f"behind {cr.id}: every signature and hash holds; manifest signed by deploy" in (
        done.output
    )
    done = runner.invoke(app, ["audit", "verify", str(out), "--json"])
    assert json.loads(done.output)["manifest_signed_by"] == "deploy"
    (out / MANIFEST_ENVELOPE).rename(tmp_path / "kept.json")
    done = runner.invoke(app, ["audit", "verify", str(out)])
    assert done.exit_code == 1 and f"does not verify: {UNSIGNED}\n" in done.output
    (tmp_path / "kept.json").rename(out / MANIFEST_ENVELOPE)
    (out / "summaries" / f"{cr.id}.json").write_text("{}")
    done = runner.invoke(app, ["audit", "verify", str(out)])
    assert done.exit_code == 1
    assert f"does not verify: {cr.id}: summary.hash" in done.output


def test_a_package_of_crs_without_git_history_relies_on_the_signed_manifest(
    history: History, tmp_path: Path
) -> None:
    """As for ServiceNow: no bundle, no history rules; the CR itself is then covered by the
    manifest's signature (and its decision by the VSA), not by a signed commit."""
    s, cr = history.signed, history.cr("passing")
    stores = Stores(s.stores.evidence, MemoryInventory(), MemoryChangeManagement(),
                    MemoryIncidents())  # fmt: skip
    data = s.trust_file.read_bytes()
    out = tmp_path / "package"
    manifest = export_package(stores, [cr], cr.id, out, (Trust(data), data), s.deploy)
    assert manifest.head is None and not (out / "history.git.bundle").exists()
    assert check_package(out, s.trust_file).problems == []
    record = out / "changes" / f"{cr.id}.json"
    record.write_bytes(record.read_bytes().replace(b'"closed"', b'"review"'))
    manifest.files = hash_files(out)
    _rewrite(out, manifest)
    assert check_package(out).problems == [
        f"package: manifest.signed: {MANIFEST} is not the manifest its signature covers",
        f"package: changes/{cr.id}.json was altered",
    ]


def test_export_refuses_a_folder_that_holds_files(history: History, tmp_path: Path) -> None:
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="exists and is not an empty folder"):
        _export(history, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".full.export-")]


def test_export_refuses_a_package_its_trust_file_would_not_verify(
    history: History, tmp_path: Path
) -> None:
    s, cr = history.signed, history.cr("passing")
    data = s.trust_file.read_bytes()
    with pytest.raises(BadInput, match="must be signed: set CHANGEFLOW_DEPLOY_SIGNING_KEY_FILE"):
        export_package(s.stores, [cr], cr.id, tmp_path / "a", (Trust(data), data))
    with pytest.raises(BadInput, match="signed by ci, which may not sign audit-package"):
        _export(history, tmp_path / "a", s.ci)
    assert list(tmp_path.iterdir()) == []


def test_headless_chromium_renders_the_index_page(exported: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         (exported / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    report = check_package(exported)
    assert done.returncode == 0, done.stderr[-500:]
    assert report.crs[0].id in done.stdout and "Approvals" in done.stdout
