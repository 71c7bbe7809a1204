"""Real services for the suite: one SeaweedFS and one Prefect server per session."""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

# before anything imports prefect: its settings are read once, at import
_PREFECT_HOME = tempfile.mkdtemp(prefix="changeflow-tests-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
os.environ["CHANGEFLOW_HOME"] = tempfile.mkdtemp(prefix="changeflow-tests-home-")
os.environ.pop("PREFECT_API_URL", None)
# No test reaches the network. A deploy reads the change log of each entry's repository, and
# most tests name an example.com one: git is pointed at a folder that does not exist instead,
# so the read fails at once, as for any unreachable repository, wherever the suite runs.
os.environ["GIT_CONFIG_COUNT"] = "1"
os.environ["GIT_CONFIG_KEY_0"] = "url.file:///nonexistent/example.com/.insteadOf"
os.environ["GIT_CONFIG_VALUE_0"] = "https://example.com/"
for _name in list(os.environ):
    if _name.startswith("CHANGEFLOW_") and _name != "CHANGEFLOW_HOME":
        del os.environ[_name]

import pytest  # noqa: E402
from stack_support import (  # noqa: E402
    S3Server,
    fresh_stack,
    new_bucket,
    postgres_database,
    ship_to_prod,
)
from suite_order import longest_first  # noqa: E402

from blocks.evidence_locker import EvidenceLocker  # noqa: E402
from cli.local_stack import (  # noqa: E402
    init_bare_repo,
    start_prefect_server,
    start_seaweedfs,
    stop_process,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the longest modules first (`suite_order`)."""
    longest_first(items)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    secret, reader_secret = secrets.token_hex(20), secrets.token_hex(20)
    process, endpoint = start_seaweedfs(
        tmp_path_factory.mktemp("seaweedfs"), "changeflow", secret,
        readers={"auditor": reader_secret},
    )  # fmt: skip
    yield S3Server(endpoint, "changeflow", secret, "auditor", reader_secret)
    stop_process(process.pid)


@pytest.fixture
def locker(s3_server: S3Server) -> EvidenceLocker:
    """A fresh bucket with Object Lock on (short retention: SeaweedFS keeps test data)."""
    locker = s3_server.locker(new_bucket(), retention_days=1)
    locker.create_bucket()
    return locker


@pytest.fixture
def unlocked_locker(s3_server: S3Server) -> EvidenceLocker:
    """A fresh bucket without Object Lock, where objects can be overwritten out of band."""
    locker = s3_server.locker(new_bucket())
    locker.client.create_bucket(Bucket=locker.bucket)
    return locker


@pytest.fixture(scope="session")
def prefect_api(prefect_database: tuple[str, str]) -> str:
    """The session's Prefect server's API URL."""
    return prefect_database[0]


# Two of the server's services turn every event into rows: the task-run recorder and the event
# persister. No test reads what they write except tests/flows/test_task_runs.py, which starts a
# server of its own that runs them (`recording_prefect_api`); together they were half the
# session server's CPU and most of its database's. Automations (the triggers service) still run.
QUIET_SERVICES = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
}


@pytest.fixture(scope="session")
def prefect_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A started Prefect server on PostgreSQL, as production runs it, and its database's name:
    flows pause in one process and resume from another. (On SQLite the server's own writers
    lock the database, and API calls meet 503s the client waits out for seconds.)"""
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from cli.in_process import in_process_flows, one_api_client

    with postgres_database() as (database, url):
        process, api = start_prefect_server(
            tmp_path_factory.mktemp("prefect-server"),
            env={"PREFECT_API_DATABASE_CONNECTION_URL": url, **QUIET_SERVICES},
        )
        os.environ["PREFECT_API_URL"] = api
        try:
            # flows the tests call here run as the CLI runs them in its own process: without
            # the heartbeat (cli/in_process.py); runs a runner or worker starts keep it. They
            # share one API client, as the demo's do.
            with (
                temporary_settings(updates={PREFECT_API_URL: api}),
                in_process_flows(),
                one_api_client(),
            ):
                yield api, database
                # send the last run logs while the server still listens
                APILogWorker.drain_all(timeout=5)
        finally:
            os.environ.pop("PREFECT_API_URL", None)
            stop_process(process.pid)


@pytest.fixture
def recording_prefect_api(
    prefect_api: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A Prefect server with every service, the task-run recorder included, for the test's
    flows (the session's server leaves it out: `QUIET_SERVICES`)."""
    from prefect.context import SyncClientContext
    from prefect.events.clients import PrefectEventsClient
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with postgres_database() as (_, url):
        process, api = start_prefect_server(
            tmp_path_factory.mktemp("prefect-recording"),
            env={"PREFECT_API_DATABASE_CONNECTION_URL": url},
        )
        try:
            # The process's events worker stays connected to the server it first sent to;
            # task runs exist only as events, so they need a worker of their own for this one.
            EventsWorker.drain_all(timeout=5)
            EventsWorker.set_client_override(PrefectEventsClient, api_url=api)
            # and a client of its own: the session's one talks to the session's server (other
            # httpx settings than that one's None, so Prefect makes a new client, not reuse it)
            with (
                temporary_settings(updates={PREFECT_API_URL: api}),
                SyncClientContext(httpx_settings={}),
            ):
                yield api
                EventsWorker.drain_all(timeout=5)
                APILogWorker.drain_all(timeout=5)
        finally:
            EventsWorker.set_client_override(None)
            stop_process(process.pid)


@pytest.fixture
def stack_env(
    s3_server: S3Server, prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """`CHANGEFLOW_*` variables for a fresh bucket and fresh git remotes, as `dev up` sets them."""
    env = fresh_stack(s3_server, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def deployable(
    stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Path]:
    """Put one artifact with passing evidence on prod; return a function that writes the
    environments file (extra TOML appended to prod's table) and gives the file the deploy
    command appends each deployment's CR id to."""

    def prepare(extra: str = "", passing: bool = True) -> Path:
        ship_to_prod(["app/bin"], "p1", passing)
        runs = tmp_path / "deploys.txt"
        environments = tmp_path / "environments.toml"
        environments.write_text(
            '[environments.prod]\nregions = ["r1"]\n'
            f'deploy = ["sh", "-c", "echo $CHANGEFLOW_CHANGE_REQUEST >> {runs}"]\n' + extra
        )
        monkeypatch.setenv("CHANGEFLOW_ENVIRONMENTS", str(environments))
        return runs

    return prepare


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """An empty bare git repository: a remote as a git server would hold it."""
    path = tmp_path / "remote.git"
    init_bare_repo(path)
    return path


@pytest.fixture
def silent() -> Iterator[str]:
    """`host:port` of a listener on 127.0.0.1 that accepts every connection and says nothing."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)  # kept open, never read from or written to

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for connection in held:
        connection.close()
    server.close()
