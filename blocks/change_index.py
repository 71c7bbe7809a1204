"""The git change-management repo's index by artifact digest (`changeflow.deployed`).

A CR's shard branch `changes/NN` holds, written in the commit that files the CR, an empty file
`artifacts/<hex[:2]>/<hex>/<CHG id>` for each sha256 of its bill of materials (which never
changes after filing). Asking which CRs deployed some artifacts reads, on each shard, one
folder per digest prefix asked about, the folders of the digests found there, and then those
CRs' records: what it costs follows the digests, not the CRs ever filed. An entry only names
a CR: the CR is read from its own shard and counts only when its record lists the digest, so
an entry pushed by hand (or on another shard) adds nothing.
"""

from __future__ import annotations

from collections.abc import Collection

from blocks.change_layout import SHARD_REFS, change_paths, shard_branch
from blocks.gitrepo import GitRemote
from blocks.gitrepo.objects import TreeEntry
from changeflow.change_ids import is_change_id
from changeflow.deployed import bom_digests, check_digests, select_deployments
from changeflow.models import ChangeRequest
from changeflow.stored import stored_change_request

__all__ = ["ARTIFACTS_DIR", "artifact_entries", "artifact_folder", "read_deployments"]

ARTIFACTS_DIR = "artifacts"
# Up to this many digests, each one's folder is read by its path (one process fewer).
_BY_PATH = 8


def artifact_folder(sha256: str) -> str:
    """The index folder of one digest: `artifacts/<hex[:2]>/<hex>`."""
    hexa = sha256.removeprefix("sha256:")
    return f"{ARTIFACTS_DIR}/{hexa[:2]}/{hexa}"


def artifact_entries(cr: ChangeRequest) -> dict[str, bytes]:
    """The index files filing `cr` adds on its shard: one empty file per digest it deployed."""
    return {f"{artifact_folder(sha)}/{cr.id}": b"" for sha in bom_digests(cr)}


def _folders(
    git: GitRemote, heads: list[tuple[str, str]], digests: list[str]
) -> list[tuple[str, str, dict[str, TreeEntry]]]:
    """(shard ref, its head, the folder) of each digest's folder found on each shard.

    A few digests: each folder read by its path. More: each prefix's folder first (one read
    per prefix and shard, however many digests share it), then the digests' folders in it.
    """
    if len(digests) <= _BY_PATH:
        asked = [(ref, head, artifact_folder(sha)) for ref, head in heads for sha in digests]
        trees = git.read_trees([f"{head}:{path}" for _, head, path in asked])
        return [(r, h, t) for (r, h, _), t in zip(asked, trees, strict=True) if t is not None]
    wanted = {sha.removeprefix("sha256:") for sha in digests}
    prefixes = sorted({hexa[:2] for hexa in wanted})
    at = [(ref, head, p) for ref, head in heads for p in prefixes]
    tops = git.read_trees([f"{head}:{ARTIFACTS_DIR}/{p}" for _, head, p in at])
    hits = [
        (ref, head, entry[2])
        for (ref, head, _), top in zip(at, tops, strict=True)
        for hexa, entry in (top or {}).items()
        if hexa in wanted and entry[1] == "tree"
    ]
    trees = git.read_trees([tree for *_, tree in hits])
    return [(r, h, t) for (r, h, _), t in zip(hits, trees, strict=True) if t is not None]


def read_deployments(git: GitRemote, sha256s: Collection[str]) -> list[ChangeRequest]:
    """The CRs whose bill of materials names one of `sha256s`, in id order.

    One fetch, then a batch read of the digests' folders on every shard (`_folders`) and one of
    the records they name.

    Raises:
        BadInput: for a malformed digest.
    """
    digests = check_digests(sha256s)
    if not digests:
        return []
    git.fetch()
    found = _folders(git, sorted(git.refs(SHARD_REFS).items()), digests)
    # an entry counts only on the CR's own shard: the record is read from there
    named = sorted(
        {
            (change_id, head)
            for ref, head, folder in found
            for change_id, entry in folder.items()
            if entry[1] == "blob"
            and is_change_id(change_id)
            and ref == f"refs/heads/{shard_branch(change_id)}"
        }
    )
    blobs = git.read_blobs([f"{head}:{change_paths(i)[0]}" for i, head in named])
    crs = [
        stored_change_request(i, data, f" at {head[:12]}")
        for (i, head), data in zip(named, blobs, strict=True)
        if data is not None
    ]
    return select_deployments(crs, digests)
