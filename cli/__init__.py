"""The `changeflow` command line: record evidence, inspect the inventory, run the flows.

Exit codes: 0 success; 1 the work ran and the answer is no (not ready, does not verify, a service
could not be reached); 2 bad input, with one line on stderr. Prefect, boto3 and git are imported
only by the commands that need them, so `--help` and input checks stay fast.
"""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from changeflow.errors import BadInput, IntegrityError, NotReady, StorageUnavailable
from cli import (  # noqa: F401 (each module adds its commands)
    audit,
    changes,
    dev,
    evidence,
    inventory,
    lifecycle,
    locker,
    serve,
    trace,
)
from cli._app import app
from cli.in_process import for_command

try:  # typer 0.2x vendors click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

__all__ = ["app", "main"]


def main() -> None:
    """Run the CLI, turning bad input into one line on stderr and exit code 2."""
    try:
        with for_command(sys.argv[1:]):
            code = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _stderr("aborted")
        sys.exit(130)
    except click_errors.ClickException as exc:
        message = exc.format_message().strip().splitlines()
        _stderr(message[0] if message else "bad usage")
        sys.exit(2)
    except (BadInput, ValidationError) as exc:
        _stderr(_one_line(exc))
        sys.exit(2)
    except (IntegrityError, NotReady, StorageUnavailable) as exc:
        _stderr(str(exc))
        sys.exit(1)
    except Exception as exc:
        if (refused := _refused(exc)) is None:
            raise
        _stderr(refused)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _refused(exc: Exception) -> str | None:
    """One line for an HTTP request refused for its credentials (401/403), else None.

    Read from the exception's response (httpx's shape) rather than by type, so the CLI does not
    import httpx or Prefect to recognise it.
    """
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status not in (401, 403):
        return None
    request = getattr(response, "request", None)
    url = getattr(request, "url", None)
    # scheme, host and port only: never a path or credentials a URL may carry
    where = "a server"
    if url is not None:
        port = f":{url.port}" if getattr(url, "port", None) else ""
        where = f"{getattr(url, 'scheme', '')}://{getattr(url, 'host', '')}{port}"
    return (
        f"{where} refused the request ({status}): check the credentials "
        "(PREFECT_API_AUTH_STRING for the Prefect API)"
    )


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        # a model's own check says "Value error, <why>": the why is the line
        message = str(first["msg"]).removeprefix("Value error, ")
        return f"invalid {where}: {message}" if where else message
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _stderr(message: str) -> None:
    typer.echo(f"changeflow: {message}", err=True)
