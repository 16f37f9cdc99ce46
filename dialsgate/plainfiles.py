"""A folder under test is hostile input: its files are read here as plain bytes, and only plain.

Every read of a folder's file on the host goes through this module:

- a path is only ever taken *inside* a root (the template's folder, a server folder): no absolute
  path, no ``..``, and no component of it may be a symbolic link (checked with ``lstat``, one
  component at a time, so a linked folder in the middle is refused too);
- a file is opened with ``O_NOFOLLOW | O_NONBLOCK`` and must be a regular file (``fstat``): a
  FIFO, a device or a socket is refused before anything waits on it;
- a tree is walked with ``os.scandir`` without following links; whatever is not a regular file
  or a folder is reported, never read, copied, hashed, served or zipped;
- every read has a cap: reaching it raises ``NotPlain`` saying what was capped.

    inside(root, relative) -> Path        # or NotPlain
    open_plain(path) -> binary file       # or NotPlain
    read_plain(path, cap) -> bytes        # or NotPlain (OverCap past the cap)
    walk_plain(root) -> PlainTree         # files, folders, refused entries
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

#: The default cap of one read of a folder's file (bytes): a model file, a template, a batch.
DEFAULT_READ_CAP = 2 * 2**30
#: At most this many entries in a walked tree (a folder DIALS receives is small).
MAX_TREE_ENTRIES = 20_000


class NotPlain(OSError):
    """A path that is not a plain file or folder inside its root, or a read over its cap."""


class OverCap(NotPlain):
    """A plain file holding more bytes than the cap of its read."""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    return "not a plain file"


def inside(root: Path, relative: str | os.PathLike) -> Path:
    """``root / relative``, refused unless it stays inside ``root`` through no symbolic link.

    ``relative`` as a template writes it (``mlserver-model/``, ``models/x.joblib``): absolute
    paths and ``..`` components are refused; each existing component is ``lstat``-ed, so a link
    anywhere on the way is refused without being followed. A missing path is returned as is
    (the caller says it is missing).
    """
    text = os.fspath(relative)
    if "\0" in text:
        raise NotPlain(f"{text!r} holds a NUL character")
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if PurePosixPath(text).is_absolute() or text.startswith(("/", "\\")):
        raise NotPlain(f"{text!r} is an absolute path: it must lie inside {root.name}/ (the template's folder)")
    if ".." in parts:
        raise NotPlain(f"{text!r} leaves the template's folder ('..'): it must lie inside it")
    path = Path(root)
    for part in parts:
        if part in ("", "."):
            continue
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return Path(root).joinpath(*[p for p in parts if p not in ("", ".")])
        if stat.S_ISLNK(mode):
            raise NotPlain(f"{path.relative_to(root).as_posix()} is a symbolic link: nothing behind it is read")
    return path


def open_plain(path: Path):
    """A binary file object of ``path``, only when it is a regular file that is not a link."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == 40:  # ELOOP: the last component is a link
            raise NotPlain(f"{Path(path).name} is a symbolic link: nothing behind it is read") from None
        raise
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise NotPlain(f"{Path(path).name} is {_kind(mode)}, not a plain file: it is not read")
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def read_plain(path: Path, cap: int = DEFAULT_READ_CAP) -> bytes:
    """The bytes of a plain file, refused (not truncated) when it holds more than ``cap``.

    Read at the size ``fstat`` gives, not at the cap: ``read(n)`` sets n bytes aside first, so
    every read of a 2 KB template asked for 2 GiB (a MemoryError under ``ulimit -v`` or strict
    overcommit). A file that holds more than its size says is read on in pieces, to the cap."""
    with open_plain(path) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > cap:
            raise OverCap(f"{Path(path).name} holds more than {cap:,} bytes (the cap of one read)")
        data = stream.read(size + 1)
        if len(data) > size:  # it grew while read, or its size was not known
            more = bytearray(data)
            while len(more) <= cap and (piece := stream.read(min(2**20, cap + 1 - len(more)))):
                more += piece
            data = bytes(more)
    if len(data) > cap:
        raise OverCap(f"{Path(path).name} holds more than {cap:,} bytes (the cap of one read)")
    return data


@dataclass
class PlainTree:
    root: Path
    files: list[Path] = field(default_factory=list)  # regular files, sorted, under root
    folders: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)  # (path, what it is)

    def problems(self) -> list[str]:
        return [f"{path.relative_to(self.root).as_posix()} is {what}" for path, what in self.refused]


def walk_plain(root: Path, max_entries: int = MAX_TREE_ENTRIES, skip_hidden: bool = False) -> PlainTree:
    """Every entry under ``root`` without following a link; non-plain entries are refused.

    The root itself must be a folder that is not a link (else it is the one refused entry).
    ``skip_hidden``: a folder whose name starts with a dot is listed, not entered (``.venv``,
    ``.git``: nothing in them is importable by its name).
    """
    root = Path(root)
    tree = PlainTree(root)
    try:
        mode = os.lstat(root).st_mode
    except FileNotFoundError:
        return tree
    if not stat.S_ISDIR(mode):
        tree.refused.append((root, _kind(mode)))
        return tree
    pending, seen = [root], 0
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                seen += 1
                if seen > max_entries:
                    tree.refused.append((root, f"a tree of more than {max_entries:,} entries (the cap of one walk)"))
                    return tree
                path = Path(entry.path)
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    tree.folders.append(path)
                    if not (skip_hidden and entry.name.startswith(".")):
                        pending.append(path)
                elif stat.S_ISREG(mode):
                    tree.files.append(path)
                else:
                    tree.refused.append((path, _kind(mode)))
    tree.files.sort()
    tree.folders.sort()
    tree.refused.sort()
    return tree


#: At most this many bytes copied out of one folder (the worker's copy, the offline build).
MAX_COPY_BYTES = 4 * 2**30


def copy_plain(source: Path, target: Path, cap: int = DEFAULT_READ_CAP, ignore: tuple[str, ...] = ("__pycache__",)) -> PlainTree:
    """Copy the plain files and folders under ``source`` to ``target`` (created), nothing else.

    A link, FIFO, device or socket is never copied, nor anything behind it: it is in the returned
    tree's ``refused``. Each file is read through ``open_plain`` (at most ``cap`` bytes); the whole
    copy holds at most ``MAX_COPY_BYTES``. Folders named in ``ignore`` are skipped.
    """
    source, target = Path(source), Path(target)
    tree = walk_plain(source)
    target.mkdir(parents=True, exist_ok=True)
    copied = 0
    for folder in tree.folders:
        relative = folder.relative_to(source)
        if not any(part in ignore for part in relative.parts):
            (target / relative).mkdir(parents=True, exist_ok=True)
    for path in tree.files:
        relative = path.relative_to(source)
        if any(part in ignore for part in relative.parts):
            continue
        copied += copy_plain_file(path, target / relative, cap=min(cap, MAX_COPY_BYTES - copied))
    return tree


def copy_plain_file(source: Path, target: Path, cap: int = DEFAULT_READ_CAP) -> int:
    """Copy one plain file (refused unless ``open_plain`` opens it; at most ``cap`` bytes), its
    permission bits and modification time kept; returns the bytes copied."""
    copied = 0
    with open_plain(source) as stream:
        status = os.fstat(stream.fileno())
        mode = stat.S_IMODE(status.st_mode)
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            for block in iter(lambda: stream.read(1 << 20), b""):
                copied += len(block)
                if copied > cap:
                    raise NotPlain(f"{Path(source).name} holds more than {cap:,} bytes (the cap of one copy)")
                out.write(block)
    os.chmod(target, mode)
    # A compile cache (numba's) is valid only for a source of the same time and size: a copy
    # stamped "now" would be compiled again at every run.
    os.utime(target, ns=(status.st_atime_ns, status.st_mtime_ns))
    return copied


def plain_kind(path: Path) -> str | None:
    """None when ``path`` itself is a plain file (lstat, not followed), else what it is ("missing" too)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    return None if stat.S_ISREG(mode) else _kind(mode)
