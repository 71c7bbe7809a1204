"""Attachments: bytes stored once under their sha256, re-hashed on every read."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from blocks.s3 import multipart
from blocks.s3.layout import Layout
from blocks.s3.objects import KnownKeys, S3Objects, b64
from changeflow.canonical import digest, digest_hex
from changeflow.errors import BadInput, IntegrityError
from changeflow.models import Attachment

__all__ = ["Attachments"]


def _no_longer_matches(hash_: str) -> IntegrityError:
    return IntegrityError(f"attachment {hash_} no longer matches its hash")


@dataclass(frozen=True)
class Attachments:
    """The attachments of one locker.

    Attributes:
        objects: the bucket's objects.
        layout: where attachments live in it.
        known: keys this locker stored or checked lately (not asked again).
        multipart_threshold: files larger than this many bytes upload in parts.
        part_size: the preferred part size of a multipart upload.
        part_concurrency: parts in flight at once.
    """

    objects: S3Objects
    layout: Layout
    known: KnownKeys
    multipart_threshold: int
    part_size: int
    part_concurrency: int

    def _attachment(self, hash_: str, label: str | None, size: int) -> Attachment:
        url = self.objects.url(self.layout.attachment(hash_))
        return Attachment(hash=hash_, url=url, label=label, size=size)

    def store_bytes(self, data: bytes, label: str | None = None) -> Attachment:
        """Store bytes once under their sha256."""
        attachment = self._attachment(digest(data), label, len(data))
        key = self.layout.attachment(attachment.hash)
        self.objects.put_once(key, data, content_type="application/octet-stream")
        self.known.add(key)
        return attachment

    def store_file(self, path: Path, label: str | None = None) -> Attachment:
        """Store a file (labelled with its name unless `label`); a big one streams in parts.

        Raises:
            BadInput: when the file does not exist.
        """
        if not path.is_file():
            raise BadInput(f"attachment not found: {path}")
        size = path.stat().st_size
        if size <= self.multipart_threshold:
            return self.store_bytes(path.read_bytes(), label or path.name)
        part_bytes = multipart.part_size(size, self.part_size)
        hex_, part_hashes = multipart.hash_file(path, part_bytes)
        attachment = self._attachment(f"sha256:{hex_}", label or path.name, size)
        key = self.layout.attachment(attachment.hash)
        if not self._holds(key, hex_, size, part_hashes):
            written = multipart.upload(
                self.objects, key, path, hex_, part_hashes, part_bytes, self.part_concurrency
            )
            # another writer stored this key first: it must hold the same bytes
            if not written and not self._holds(key, hex_, size, part_hashes):
                raise IntegrityError(f"{self.objects.url(key)} already holds different content")
        self.known.add(key)
        return attachment

    def _holds(self, key: str, hex_: str, size: int, part_hashes: list[str]) -> bool:
        """Whether `key` already holds these bytes; a stored object that differs raises."""
        head = self.objects.head(key)
        if head is None:
            return False
        stored = head.get("ChecksumSHA256")
        if head.get("ContentLength") == size and stored in (
            b64(hex_),
            multipart.composite(part_hashes),
        ):
            return True
        # stored another way (other part size): re-hash what is there, streaming
        self.verify(f"sha256:{hex_}")
        return True

    def check_stored(self, attachment: Attachment) -> None:
        """Check an attachment is stored with its sha256, before a record refers to it.

        Raises:
            IntegrityError: when it is missing or stored with another checksum.
        """
        key = self.layout.attachment(attachment.hash)
        if key in self.known:
            # this locker wrote or checked it moments ago, with the server checking its sha256
            return
        head = self.objects.head(key)
        if head is None:
            raise IntegrityError(f"attachment {attachment.hash} is not stored")
        stored = head.get("ChecksumSHA256")
        hex_ = digest_hex(attachment.hash)
        if stored and "-" in stored:
            # a multipart object: S3 keeps a checksum of its parts; the upload recorded the
            # whole-object sha256 (checked part by part before it completed) in its metadata
            matches = head.get("Metadata", {}).get("sha256") == hex_
        else:
            matches = not stored or stored == b64(hex_)
        if not matches:
            raise IntegrityError(f"attachment {attachment.hash} is stored with another checksum")
        self.known.add(key)

    def get(self, hash_: str) -> bytes:
        """An attachment's bytes, in memory (small ones), checked against `hash_`."""
        data = self.objects.get(self.layout.attachment(hash_))
        if digest(data) != hash_:
            raise _no_longer_matches(hash_)
        return data

    def _stream(self, hash_: str, sink: BinaryIO | None) -> int:
        found, size = self.objects.stream(self.layout.attachment(hash_), sink)
        if found != hash_:
            raise _no_longer_matches(hash_)
        return size

    def verify(self, hash_: str) -> int:
        """Re-hash a stored attachment while it streams (constant memory); its size.

        Raises:
            IntegrityError: when it is missing or no longer hashes to `hash_`.
        """
        return self._stream(hash_, None)

    def download(self, hash_: str, target: Path) -> int:
        """Stream an attachment to `target`, which appears only once it verified; its size.

        Raises:
            IntegrityError: when it is missing or no longer hashes to `hash_`.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as sink:
                size = self._stream(hash_, sink)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size
