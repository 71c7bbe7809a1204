"""The local stack's port picks: a server must start even when a port it was given is taken."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli import local_stack
from cli.local_stack import (
    _http_ok,
    _serve,
    _spawn,
    free_port,
    seaweedfs_ports,
    start_seaweedfs,
    stop_process,
)


def test_no_seaweedfs_port_is_another_services_grpc_port() -> None:
    for _ in range(50):
        ports = seaweedfs_ports()
        grpc = {port + 10000 for port in ports.values()}
        assert len(set(ports.values())) == len(ports)
        assert not grpc & set(ports.values()), ports
        assert max(grpc) < 65536


def test_a_server_that_loses_its_port_starts_again_on_another(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        picks = [taken.getsockname()[1], free_port()]

        def launch() -> tuple[subprocess.Popen[bytes], str]:
            port = picks.pop(0)
            args = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
            return _spawn(args, log), f"http://127.0.0.1:{port}/"

        process, url = _serve(launch, _http_ok, "http.server", log, timeout=30)
    try:
        assert not picks, "the second pick was not launched"
        assert _http_ok(url)
        assert "Address already in use" in log.read_text()
    finally:
        stop_process(process.pid)


def test_seaweedfs_serves_on_when_a_port_of_a_later_part_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """weed mini checks its ports when it starts, but its last parts bind theirs only after the
    S3 gateway answers, which is when the server counts as started. Every port still free then
    is taken here, as another test's server starting at the same time once took one in CI: the
    server must serve on (it had a WebDAV server then, whose lost port ended the process)."""
    first = seaweedfs_ports()
    monkeypatch.setattr(local_stack, "seaweedfs_ports", lambda: first)
    taken: list[socket.socket] = []

    def take_free_ports() -> None:
        deadline = time.monotonic() + 60
        while not _http_ok(f"http://127.0.0.1:{first['s3']}") and time.monotonic() < deadline:
            time.sleep(0.005)
        for port in first.values():
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
                taken.append(sock)
            except OSError:
                sock.close()

    thief = threading.Thread(target=take_free_ports)
    thief.start()
    process, endpoint = start_seaweedfs(tmp_path, "changeflow", "s" * 40)
    thief.join()
    try:
        assert taken, "every part bound its port first: nothing was tested"
        time.sleep(1)
        assert process.poll() is None, (tmp_path / "weed.log").read_text()
        assert _http_ok(endpoint)
    finally:
        stop_process(process.pid)
        for sock in taken:
            sock.close()
