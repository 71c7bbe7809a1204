"""The local stack's port picks: `weed mini` refuses ports that collide with its gRPC ports."""

from __future__ import annotations

from blocks.local_stack import seaweedfs_ports


def test_no_seaweedfs_port_is_another_services_grpc_port() -> None:
    for _ in range(50):
        ports = seaweedfs_ports()
        grpc = {ports[name] + 10000 for name in ports if name != "webdav"}
        assert len(set(ports.values())) == len(ports)
        assert not grpc & set(ports.values()), ports
        assert max(grpc) < 65536
