"""Running build, check, deploy, backout and acceptance commands: argument lists, never a shell.

Every such command is the project's or an application's code, so it gets an allow-listed
environment, never the worker's: the pipeline's own credentials (the locker's, the repos',
Prefect's, a forge's) stay with the pipeline.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from changeflow.errors import BadInput

__all__ = ["BASE_VARIABLES", "CommandResult", "command_environment", "run_command"]

BASE_VARIABLES = ("HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR")
"""What every command gets from the worker's environment, besides PATH and `LC_*`."""
_LOCALE_RE = re.compile(r"^LC_[A-Z_]+$")


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, limit: int = 2000) -> str:
        """The end of what it printed, for a log line or an error."""
        return (self.stdout + self.stderr).decode("utf-8", "replace")[-limit:]


def command_environment(
    env: Mapping[str, str] | None = None,
    *,
    pass_env: Iterable[str] = (),
    worker: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a command runs with: the allow-list, `pass_env`, then `env`.

    From the worker's environment (`worker`, default the process's) only PATH (the
    interpreter's bin folder first, so `python` and the tools installed beside changeflow are
    the ones found), HOME, locale (LANG, LANGUAGE, `LC_*`), TZ and TMPDIR, plus the variables
    `pass_env` names (the environments file's explicit choice). `env` (the step's documented
    `CHANGEFLOW_*` inputs, resolved secrets) is added last.
    """
    source = os.environ if worker is None else worker
    chosen = set(BASE_VARIABLES) | set(pass_env)
    out = {k: v for k, v in source.items() if k in chosen or _LOCALE_RE.match(k)}
    bin_dir = str(Path(sys.executable).parent)
    out["PATH"] = os.pathsep.join(p for p in (bin_dir, source.get("PATH", "")) if p)
    out.update(env or {})
    return out


def run_command(
    argv: list[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    pass_env: Iterable[str] = (),
    timeout: float = 1800,
) -> CommandResult:
    """Run `argv` in `cwd` with the allow-listed environment of `command_environment`.

    Raises:
        BadInput: when the program does not exist.
    """
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=command_environment(env, pass_env=pass_env),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BadInput(f"command not found: {argv[0]}") from exc
    return CommandResult(argv, done.returncode, done.stdout, done.stderr)
