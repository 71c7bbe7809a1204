"""Separation of duties against commit authors, and the quorum's count (issue 13).

The author of an entry's commit (and the SSH key that signed it) travels from the raw commit to
the CR's `delta_authors`; an approver who wrote a commit of the delta is refused by identity or
by key, and the CR's "N more needed" counts only approvals that still stand.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from changeflow.approvals import (
    approval_problems,
    approvals_given,
    approvals_needed,
    check_approval,
    cr_digest,
    quorum_line,
    statement_of,
)
from changeflow.approvers import Approval, ApprovalRule, Approver
from changeflow.authors import CommitAuthor, authors_of, parse_commit, signer_key
from changeflow.change import draft_change_request, record_decision, transition
from changeflow.delta import Delta
from changeflow.errors import BadInput
from changeflow.models import ChangeRequest, ChangeState, InventoryEntry
from changeflow.readiness import Readiness
from changeflow.render import render_change_request
from changeflow.summary import EvidenceSummary


def _key(n: int) -> str:
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes([n]) * 32
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


KEY_A = _key(1)
ALICE = Approver(identity="alice@example.com", public_key=KEY_A)
BOB = Approver(identity="bob@example.com", public_key=_key(2))
TWO = ApprovalRule(approvers=[ALICE, BOB], approvals_required=2)


def fake_verify(approver: Approver, text: str, signature: str) -> bool:
    """A stand-in for ssh-keygen in these pure tests: 'sig:<identity>:<text>'."""
    return signature == f"sig:{approver.identity}:{text}"


def waiting(rule: ApprovalRule = TWO, **fields: object) -> ChangeRequest:
    cr = ChangeRequest.model_validate(
        {
            "id": "CHG0000001",
            "environment": "prod",
            "region": "us",
            "deployment_run_id": "d",
            "assigned_to": "Carol <carol@example.com>",
            "approval_rule": rule,
            **fields,
        }
    )
    cr = transition(cr, ChangeState.assess, by="changeflow", why="filed")
    return transition(cr, ChangeState.authorize, by="changeflow", why="assessed")


def signed(cr: ChangeRequest, who: str, decision: str = "approved") -> Approval:
    approval = Approval.model_validate(
        {
            "by": who,
            "decision": decision,
            "date": datetime(2025, 1, 1, tzinfo=UTC),
            "cr_digest": cr_digest(cr),
            "signature": "placeholder",
        }
    )
    text = statement_of(cr.id, approval)
    return approval.model_copy(update={"signature": f"sig:{who}:{text}"})


def refused(cr: ChangeRequest, approval: Approval, rule: ApprovalRule = TWO) -> str:
    with pytest.raises(BadInput) as caught:
        check_approval(cr, approval, rule, fake_verify)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _ssh_signature(public_key: str) -> str:
    """An armored SSH signature (PROTOCOL.sshsig) naming `public_key`; its signature bytes are
    junk: the signer's key is read, never trusted, from a commit."""
    blob = base64.b64decode(public_key.split()[1])
    body = b"SSHSIG" + (1).to_bytes(4, "big") + _string(blob) + _string(b"git")
    body += _string(b"") + _string(b"sha512") + _string(b"\x00" * 16)
    text = base64.b64encode(body).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return "\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----"])


def _commit(author: str, signature: str | None = None, message: str = "change") -> str:
    headers = [
        "tree " + "a" * 40,
        "parent " + "b" * 40,
        f"author {author} 1700000000 +0100",
        "committer CI Bot <ci@example.com> 1700000001 +0000",
    ]
    if signature is not None:
        first, *rest = signature.split("\n")
        headers.append(f"gpgsig {first}")
        headers += [f" {line}" for line in rest]
    return "\n".join([*headers, "", message])


def test_a_commit_names_its_author_and_the_ssh_key_that_signed_it() -> None:
    plain = parse_commit(_commit("Bob Builder <bob@example.com>"))
    assert plain == CommitAuthor(identity="Bob Builder <bob@example.com>")
    signed_commit = parse_commit(_commit("Bob <bob@example.com>", _ssh_signature(KEY_A)))
    assert signed_commit is not None and signed_commit.key == KEY_A
    pgp = "-----BEGIN PGP SIGNATURE-----\n\niQEz\n-----END PGP SIGNATURE-----"
    assert parse_commit(_commit("Bob <bob@example.com>", pgp)) == CommitAuthor(
        identity="Bob <bob@example.com>"
    )  # a PGP key is no SSH key an approver could hold
    # a message cannot pass for a header: the headers end at the first blank line
    forged = _commit("Bob <bob@example.com>", message="x\ngpgsig " + _ssh_signature(KEY_A))
    assert parse_commit(forged) == CommitAuthor(identity="Bob <bob@example.com>")
    assert signer_key("-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----") is None
    assert parse_commit("tree " + "a" * 40 + "\n\nno author") is None


def test_an_author_is_one_line_and_a_key_an_ssh_key() -> None:
    with pytest.raises(ValueError, match="one line"):
        CommitAuthor(identity="Eve\nApproved-by: alice@example.com")
    with pytest.raises(ValueError, match="SSH public key"):
        CommitAuthor(identity="Eve <eve@example.com>", key="not a key")
    assert CommitAuthor(identity="Eve", key=f"{KEY_A} eve@laptop").key == KEY_A


def _entry(name: str, author: CommitAuthor | None) -> InventoryEntry:
    return InventoryEntry(
        name=name, artifact=f"s3://b/{name}", version="1", type="file",
        sha256="sha256:" + "0" * 64, repository_url="https://example.com/app",
        commit_sha="c" * 40, build_number="1", pipeline_run_id="ci-1",
        provenance=f"artifact://{name}", author=author,
    )  # fmt: skip


def test_the_cr_carries_the_authors_of_its_delta() -> None:
    bob = CommitAuthor(identity="Bob <bob@example.com>", key=KEY_A)
    entries = {
        "app/a": _entry("app/a", bob),
        "app/b": _entry("app/b", bob),
        "app/c": _entry("app/c", None),  # recorded before authors were
    }
    cr = draft_change_request(
        "CHG0000001", environment="prod", region="us", deployment_run_id="d",
        delta=Delta(entries=entries, changed=[], added=sorted(entries), deleted=[]),
        previous={}, inventory_commit="d" * 40, previous_inventory_commit=None, promotion=None,
        summary=EvidenceSummary(scope="s", environment="prod", region="us"), summary_url="u",
        summary_sha256="sha256:" + "1" * 64, readiness=Readiness(ready=False), emergency=False,
    )  # fmt: skip
    assert cr.delta_authors == [bob] == authors_of([bob, None, bob])
    shown = render_change_request(cr)
    assert "Commit authors (they may not approve it): Bob \\<bob@example.com\\>" in shown


def test_an_author_may_not_approve_under_another_name_with_the_same_key() -> None:
    """Bob wrote the commit as 'Robert <rob@home.example>' with the key he approves with."""
    carol = Approver(identity="carol@example.com", public_key=_key(3))
    rule = ApprovalRule(approvers=[ALICE, BOB, carol], approvals_required=2)
    authored = CommitAuthor(identity="Robert <rob@home.example>", key=BOB.public_key)
    cr = waiting(rule, delta_authors=[authored])
    message = refused(cr, signed(cr, "bob@example.com"), rule)
    assert message.startswith("separation of duties: ") and "signed with their key" in message
    # by identity, in any case and with or without the name around the email
    by_mail = waiting(rule, delta_authors=[CommitAuthor(identity="Someone <ALICE@example.com>")])
    assert refused(by_mail, signed(by_mail, "alice@example.com"), rule).startswith("separation")
    # unsigned, unlisted (an environment without approvers): the typed name is compared too
    open_rule = ApprovalRule()
    typed = waiting(open_rule, delta_authors=[CommitAuthor(identity="Eve <eve@example.com>")])
    for name in ("eve", "EVE@example.com", "Eve <eve@example.com>"):
        unsigned = Approval(by=name, decision="approved")
        assert refused(typed, unsigned, open_rule).startswith("separation of duties: ")


def test_the_quorum_counts_a_person_once_however_they_spell_their_name() -> None:
    rule = ApprovalRule(approvals_required=2)  # nobody listed: unsigned, any name
    cr = waiting(rule)
    cr = record_decision(cr, Approval(by="dave@example.com", decision="approved"))
    again = Approval(by="Dave <DAVE@example.com>", decision="approved")
    assert refused(cr, again, rule).startswith("quorum: ")
    # recorded anyway (a backend's own record, an older CR): it does not count twice
    cr = record_decision(cr, again)
    assert approvals_needed(cr) == 1 and "1 more needed" in quorum_line(cr)
    assert cr.state.value == "authorize"


def test_an_approval_separation_of_duties_refuses_does_not_count() -> None:
    cr = waiting(delta_authors=[CommitAuthor(identity="Bob <bob@example.com>")])
    # on the record, however it got there (a hand-edited CR, a backend without the checks)
    cr = cr.model_copy(update={"approvals": [signed(cr, "bob@example.com")]})
    assert approvals_given(cr) == [] and approvals_needed(cr) == 2
    assert "nobody yet" in quorum_line(cr) and "2 more needed" in quorum_line(cr)
    alice = signed(cr, "alice@example.com")
    cr = record_decision(cr, alice)
    assert cr.state.value == "authorize" and "1 more needed" in quorum_line(cr)
    problems = approval_problems(cr, fake_verify)
    assert any("separation of duties" in p for p in problems), problems


def test_approvals_of_an_earlier_round_do_not_count() -> None:
    cr = record_decision(waiting(), signed(waiting(), "alice@example.com"))
    no = signed(cr, "bob@example.com", decision="rejected")
    cr = record_decision(cr, no)
    assert cr.state.value == "cancelled"
    assert approvals_given(cr) == [] and "2 more needed" in quorum_line(cr)
    assert TWO.approvals_required == 2
