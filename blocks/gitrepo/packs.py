"""Git objects written into a repository by Python: loose, or many at once as one pack.

Git's object id is the hash of `<type> <size>\\0<body>`. A loose object is that, deflated, in
`objects/<id[:2]>/<id[2:]>`; a pack holds many (`objects/pack/pack-<checksum>.pack`, each
object's type and size then its deflated body, no deltas) with an index (`.idx`, version 2)
that lists their ids in order with each one's offset. A commit of a change request writes a
few hundred trees (the indexes on its shard): one pack costs two files instead of hundreds,
and no git process. Files are written aside and renamed into place, the index last, so no
reader sees half of one. Whatever git later sends from them is checked by the receiving side.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from pathlib import Path

__all__ = ["LOOSE_AT_MOST", "object_id", "write_loose", "write_pack"]

LOOSE_AT_MOST = 8
_TYPES = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}


def object_id(algorithm: str, kind: str, body: bytes) -> str:
    """The id git gives an object of this type and body (`algorithm`: sha1 or sha256)."""
    header = f"{kind} {len(body)}\0".encode()
    return hashlib.new(algorithm, header + body, usedforsecurity=False).hexdigest()


def _place(folder: Path, name: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="tmp_obj_")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_loose(objects_dir: Path, sha: str, kind: str, body: bytes) -> None:
    """Write one loose object (nothing when it is there already)."""
    folder = objects_dir / sha[:2]
    if (folder / sha[2:]).exists():
        return
    folder.mkdir(exist_ok=True)
    _place(folder, sha[2:], zlib.compress(f"{kind} {len(body)}\0".encode() + body, 1))


def write_pack(objects_dir: Path, algorithm: str, objects: list[tuple[str, str, bytes]]) -> None:
    """Write `objects` ((id, type, body), distinct ids) as one pack and its index."""
    pack = bytearray(b"PACK" + struct.pack(">II", 2, len(objects)))
    placed: list[tuple[bytes, int, int]] = []
    for sha, kind, body in objects:
        size = len(body)
        byte = (_TYPES[kind] << 4) | (size & 0x0F)
        size >>= 4
        header = bytearray()
        while size:
            header.append(byte | 0x80)
            byte = size & 0x7F
            size >>= 7
        header.append(byte)
        data = bytes(header) + zlib.compress(body, 1)
        placed.append((bytes.fromhex(sha), zlib.crc32(data), len(pack)))
        pack += data
    if len(pack) >= 1 << 31:
        raise ValueError("a pack over 2 GiB needs the index's large offsets")
    checksum = hashlib.new(algorithm, pack).digest()
    pack += checksum
    placed.sort()
    fanout = [0] * 256
    for raw, _, _ in placed:
        fanout[raw[0]] += 1
    for i in range(1, 256):
        fanout[i] += fanout[i - 1]
    index = bytearray(b"\377tOc" + struct.pack(">I", 2) + struct.pack(">256I", *fanout))
    index += b"".join(raw for raw, _, _ in placed)
    index += b"".join(struct.pack(">I", crc) for _, crc, _ in placed)
    index += b"".join(struct.pack(">I", offset) for _, _, offset in placed)
    index += checksum
    index += hashlib.new(algorithm, index).digest()
    folder = objects_dir / "pack"
    folder.mkdir(exist_ok=True)
    name = f"pack-{checksum.hex()}"
    _place(folder, f"{name}.pack", bytes(pack))
    _place(folder, f"{name}.idx", bytes(index))
