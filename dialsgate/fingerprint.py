"""Content hashes of a file and of a folder (every plain file: what ``dismcli package`` would zip),
for the verdict's provenance and the compile cache's key. Links and other non-plain entries are
never followed or read (``plainfiles``); their names and kinds enter the folder's hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

from dialsgate.plainfiles import DEFAULT_READ_CAP, NotPlain, open_plain, walk_plain


def file_sha256(path: Path, cap: int = DEFAULT_READ_CAP) -> str:
    """The hash of a plain file (``NotPlain`` for a link, a FIFO, a device, or more than ``cap`` bytes)."""
    digest, read = hashlib.sha256(), 0
    with open_plain(path) as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            read += len(block)
            if read > cap:
                raise NotPlain(f"{Path(path).name} holds more than {cap:,} bytes (the cap of one read)")
            digest.update(block)
    return digest.hexdigest()


def plain_file_sha256(path: Path) -> str | None:
    """``file_sha256``, or None when the path is not a plain file (missing, a link, a FIFO...)."""
    try:
        return file_sha256(path)
    except OSError:
        return None


def tree_sha256(folder: Path) -> str:
    """One hash of every plain file under ``folder`` (relative path and content, in path order):
    what ``dismcli package`` would zip from it. A refused entry counts by its name and kind."""
    digest = hashlib.sha256()
    tree = walk_plain(Path(folder))
    for path in tree.files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + file_sha256(path).encode() + b"\n")
    for problem in tree.problems():
        digest.update(b"refused\0" + problem.encode() + b"\n")
    return digest.hexdigest()
