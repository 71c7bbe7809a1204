"""`cr approve` and `cr reject` of one CR at once: exactly one is recorded, the other exits 1.

Two real `changeflow` processes, each with its own mirror (two people on two machines). A
pre-receive hook on the bare remote holds each push until both have arrived, so both deciders
have read the CR waiting for approval before either decision lands: the race is certain, not
left to timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stack_support import git_in, race

from blocks.change_management import GitChangeManagement, change_paths
from changeflow.change import transition
from changeflow.models import ChangeRequest, ChangeState
from changeflow.revisions import revision

# holds a push until two have arrived (at most 60 s): both deciders have read the CR by then
HOLD = """#!/bin/sh
touch "{arrivals}/$$"
i=0
while [ "$(ls "{arrivals}" | wc -l)" -lt 2 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
cat >/dev/null
"""


def _waiting(block: GitChangeManagement) -> ChangeRequest:
    def build(change_id: str) -> ChangeRequest:
        cr = ChangeRequest(id=change_id, environment="prod", region="r1", deployment_run_id="d-1")
        return transition(cr, ChangeState.assess, by="changeflow", why="filed")

    filed = block.create(build)
    waiting = transition(filed, ChangeState.authorize, by="changeflow", why="assessed")
    return block.update(waiting, "waiting for approval", expected=revision(filed))


def test_approve_and_reject_at_once_record_exactly_one_decision(tmp_path: Path) -> None:
    remote = tmp_path / "changes.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
    block = GitChangeManagement(remote_url=remote.as_uri(), cache_dir=str(tmp_path / "setup"))
    cr = _waiting(block)
    arrivals = tmp_path / "arrivals"
    arrivals.mkdir()
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(HOLD.format(arrivals=arrivals))
    hook.chmod(0o755)
    history = len(block.history(cr.id))
    deciders = [("approve", "alice"), ("reject", "bob")]

    def environment(i: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGEFLOW_")}
        env.pop("PREFECT_API_URL", None)
        home = str(tmp_path / f"home-{i}")  # a mirror of its own, as on another machine
        return {**env, "CHANGEFLOW_CHANGE_REPO_URL": remote.as_uri(), "CHANGEFLOW_HOME": home}

    def decide(i: int, env: dict[str, str]) -> tuple[int, subprocess.CompletedProcess[str]]:
        verb, who = deciders[i]
        args = [sys.executable, "-m", "cli", "cr", verb, cr.id, "--by", who]
        return i, subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)

    done, errors = race(2, environment, decide)

    assert errors == []
    # both pushed a decision on the same revision (the winner then also publishes `main`)
    assert len(list(arrivals.iterdir())) >= 2
    by_code = {result.returncode: (i, result) for i, result in done}
    assert sorted(by_code) == [0, 1], [(r.returncode, r.stderr) for _, r in done]
    winner, won = by_code[0]
    _, lost = by_code[1]
    verb, who = deciders[winner]
    decided = f"{verb}d" if verb == "approve" else f"{verb}ed"
    assert f"{cr.id} {decided} by {who}" in won.stdout
    # the loser: one line that says what the CR holds now, no traceback, nothing on stdout
    lines = lost.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lost.stderr and lost.stdout == "", lost.stderr
    assert f"{cr.id} changed since it was read" in lines[0]
    assert f"{decided} by {who}" in lines[0]
    # the record and the history agree: one decision, one commit
    stored = block.get(cr.id)
    assert [(a.by, a.decision) for a in stored.approvals] == [(who, decided)]
    assert len(block.history(cr.id)) == history + 1
    log = git_in(remote, "log", "--format=%s", "main", "--", change_paths(cr.id)[0]).split("\n")
    assert log[0] == f"{cr.id}: {decided} by {who}"
    assert sum(" by alice" in s or " by bob" in s for s in log) == 1
    assert block.history(cr.id)[0].message.startswith(f"{cr.id}: {decided} by {who}")
