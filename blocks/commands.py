"""Running build, check and deploy commands: argument lists, never a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from changeflow.errors import BadInput

__all__ = ["CommandResult", "run_command"]


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


def run_command(
    argv: list[str],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
) -> CommandResult:
    """Run `argv` in `cwd` with the current environment plus `env`.

    The interpreter's own bin folder comes first on PATH, so `python` and the tools installed
    beside changeflow are the ones a project's commands find.

    Raises:
        BadInput: when the program does not exist.
    """
    bin_dir = str(Path(sys.executable).parent)
    full_env = {**os.environ, **(env or {})}
    full_env["PATH"] = os.pathsep.join([bin_dir, full_env.get("PATH", "")])
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=full_env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BadInput(f"command not found: {argv[0]}") from exc
    return CommandResult(argv, done.returncode, done.stdout, done.stderr)
