"""The local stack's port picks: a server must start even when a port it was given is taken."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from cli.local_stack import _http_ok, _serve, _spawn, free_port, seaweedfs_ports, stop_process


def test_no_seaweedfs_port_is_another_services_grpc_port() -> None:
    for _ in range(50):
        ports = seaweedfs_ports()
        grpc = {ports[name] + 10000 for name in ports if name != "webdav"}
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
