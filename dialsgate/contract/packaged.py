"""What DIALS really receives: ``dismcli package``'s template and zip, unpacked for the gate.

dismcli 0.6.1 (``dismcli/lib/package/packager.py``) packages each resource of the build
template (``.dism-artifacts/build/template.yaml``) as follows:

- the zip is ``.dism-artifacts/package/<uuid4 hex>.zip``: every *file* under the build folder
  ``.dism-artifacts/build/<ResourceKey>/`` (``rglob``, no folder entries), each named by its path
  relative to that folder, deflated (``zipfile.ZIP_DEFLATED``);
- it is uploaded to a presigned URL DIALS hands out for (workspace, zip name); the resource's
  ``CodeUri`` becomes ``s3://<bucket>/<key>``, bucket and key read from that URL, the key ending
  in the zip's name;
- ``ModelUri`` stays what the build wrote: the model file's bare name, at the zip's root;
- the template is written again with dism-core (``Template.to_yaml``: ``model_dump(mode="json")``,
  every field, ``null`` for the unset ones) to ``.dism-artifacts/package/template.yaml``.
  dism-core 1.5.1 requires ``Dims`` of each InputMetadata attribute, so dismcli 0.6.1 writes them;
  an attribute without ``Dims`` (a later DISM's form) means ``[-1]``.

``unpack_package`` checks such a pair as hostile input (the zip read as plain bytes under caps,
every member judged from its header before anything is written, the inflated bytes counted) and
writes the author's form of it, so the rest of the gate judges exactly the zip's files:

    into/template.yaml   the packaged template, its one admitted resource with CodeUri
                         ``package/`` and ModelUri ``package/<ModelUri>``
    into/package/        the zip's members (plain files 0644, folders 0755, nothing else)

    unpack_package(packaged_template, zip_path, into) -> Package   # or PackageRefused
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import shutil
import stat
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from dialsgate.contract.template import MLSERVER_TYPE_PREFIX, TemplateRefused, read_template
from dialsgate.inert import inert
from dialsgate.limits import limit, shorten
from dialsgate.plainfiles import NotPlain, read_plain

#: Where the zip's members are written inside ``into`` (the author-form CodeUri).
PACKAGE_FOLDER = "package"
AUTHOR_TEMPLATE = "template.yaml"
#: The scheme of the CodeUri dismcli writes (``s3://<bucket>/<key>``).
CODE_URI_SCHEME = "s3"
#: Compression methods of a member: stored and deflated (dismcli writes deflated).
COMPRESSION_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
#: General purpose flag bits of an encrypted member: traditional (bit 0), strong (bit 6), and
#: an encrypted central directory (bit 13).
ENCRYPTION_FLAGS = 0x0001 | 0x0040 | 0x2000
#: The central directory holds at most this many bytes per allowed member (a header of 46 bytes,
#: a name, an extra field, a comment): it is checked before zipfile parses it into objects.
CENTRAL_DIRECTORY_BYTES_PER_MEMBER = 2048
#: A member's name has at most this many characters.
MAX_NAME_CHARS = 1024
#: Bytes read from a member per step while inflating.
READ_BLOCK = 1 << 20
#: The model's Dims of an InputMetadata attribute that has none.
DEFAULT_METADATA_DIMS = [-1]

_END_RECORD = b"PK\x05\x06"
_END_RECORD_FORMAT = "<4s4H2LH"
_END_RECORD_SIZE = struct.calcsize(_END_RECORD_FORMAT)  # 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_MAX_COMMENT = 0xFFFF


class PackageRefused(ValueError):
    """A packaged template and zip the gate does not unpack: the reason names the member or field."""


@dataclass(frozen=True)
class Member:
    name: str  # as the zip names it (a folder with its trailing /)
    size: int  # bytes once inflated
    folder: bool


@dataclass(frozen=True)
class Package:
    zip_path: Path
    zip_sha256: str
    packaged_template: Path
    resource_key: str
    code_uri: str  # the packaged CodeUri (s3://bucket/key)
    template: Path  # the author-form template written into ``into``
    folder: Path  # the zip's members, unpacked
    model_file: Path
    members: tuple[Member, ...]

    def facts(self) -> dict:
        """What a verdict's provenance says of the package it judged."""
        return {
            "package": str(self.zip_path),
            "package_sha256": self.zip_sha256,
            "packaged_template": str(self.packaged_template),
            "package_code_uri": shorten(self.code_uri),
            "package_members": len(self.members),
        }


def _named(name: str) -> str:
    """A member's name or a template string as a reason shows it: cut, escaped."""
    return repr(inert(shorten(name)))


def unpack_package(packaged_template: Path, zip_path: Path, into: Path, resource_key: str | None = None) -> Package:
    """Check ``zip_path`` and ``packaged_template`` (``dismcli package``'s), unpack the zip into
    ``into/package`` and write the author-form template ``into/template.yaml``.

    ``into`` must be missing or an empty folder. ``resource_key``: the resource to admit, when
    several resources of the template name this zip (dismcli gives each resource its own zip).
    Raises ``PackageRefused`` naming the reason; nothing of a refused zip stays in ``into``.
    """
    zip_path, packaged_template, into = Path(zip_path), Path(packaged_template), Path(into)
    try:
        document = read_template(packaged_template)
    except TemplateRefused as error:
        raise PackageRefused(f"the packaged template: {error}") from None
    cap = int(limit("package_bytes"))
    try:
        data = read_plain(zip_path, cap)
    except NotPlain as error:
        capped = " (DIALSGATE_MAX_PACKAGE_BYTES)" if "more than" in str(error) else ""
        raise PackageRefused(f"the zip: {error}{capped}") from None
    except OSError as error:
        raise PackageRefused(f"the zip {zip_path.name} cannot be read: {error.strerror or error}") from None
    digest = hashlib.sha256(data).hexdigest()
    key, resource = _admitted_resource(document, zip_path.name, resource_key)
    with _opened(data) as archive:
        members, infos = _judged_members(archive)
        model_uri = str(resource["Properties"].get("ModelUri"))
        if not any(member.name == model_uri and not member.folder for member in members):
            raise PackageRefused(
                f"resource {_named(key)}: ModelUri {_named(model_uri)} is no file of the zip "
                "(dismcli package writes the model file's name, at the zip's root)"
            )
        _prepare(into)
        folder = into / PACKAGE_FOLDER
        try:
            _extract(archive, members, infos, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # nothing of a refused zip stays
            raise
    template = into / AUTHOR_TEMPLATE
    _write_new(template, yaml.safe_dump(_author_form(document, key, resource), sort_keys=False).encode())
    return Package(
        zip_path=zip_path,
        zip_sha256=digest,
        packaged_template=packaged_template,
        resource_key=key,
        code_uri=str(resource["Properties"]["CodeUri"]),
        template=template,
        folder=folder,
        model_file=folder / model_uri,
        members=tuple(members),
    )


# --------------------------------------------------------------------------- the template


def code_uri_names(code_uri: object, zip_name: str) -> bool:
    """Whether ``code_uri`` is a CodeUri as dismcli writes it for a zip called ``zip_name``:
    ``s3://<bucket>/<key>``, the key's last component the zip's name."""
    if not isinstance(code_uri, str):
        return False
    parts = urlsplit(code_uri)
    last = unquote(parts.path).rstrip("/").rsplit("/", 1)[-1]
    return parts.scheme == CODE_URI_SCHEME and bool(parts.netloc) and last == zip_name


def _admitted_resource(document: dict, zip_name: str, resource_key: str | None) -> tuple[str, dict]:
    resources = document.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise PackageRefused("the packaged template has no Resources")
    mlserver = {
        str(key): value
        for key, value in resources.items()
        if isinstance(value, dict) and str(value.get("Type", "")).startswith(MLSERVER_TYPE_PREFIX)
    }
    for key, value in mlserver.items():
        if not isinstance(value.get("Properties"), dict):
            raise PackageRefused(f"resource {_named(key)} has no Properties mapping")
    naming = {key: value for key, value in mlserver.items() if code_uri_names(value["Properties"].get("CodeUri"), zip_name)}
    if resource_key is not None:
        if resource_key not in mlserver:
            raise PackageRefused(f"resource {_named(resource_key)} is no MLServer resource of the packaged template")
        if resource_key not in naming:
            code_uri = mlserver[resource_key]["Properties"].get("CodeUri")
            raise PackageRefused(
                f"resource {_named(resource_key)}: CodeUri {_named(str(code_uri))} does not name the zip {_named(zip_name)} "
                f"(dismcli package writes {CODE_URI_SCHEME}://<bucket>/<key>, the key ending in the zip's name)"
            )
        return resource_key, naming[resource_key]
    if len(naming) == 1:
        return next(iter(naming.items()))
    if naming:
        raise PackageRefused(f"resources {sorted(naming)} all name the zip {_named(zip_name)}: name one with --resource")
    found = {key: shorten(value["Properties"].get("CodeUri")) for key, value in mlserver.items()}
    raise PackageRefused(
        f"no MLServer resource of the packaged template names the zip {_named(zip_name)} as its CodeUri "
        f"({CODE_URI_SCHEME}://<bucket>/<key>, the key ending in the zip's name); found {inert(found)}"
    )


def _author_form(document: dict, key: str, resource: dict) -> dict:
    """The packaged template as an author writes it: the admitted resource only, CodeUri the
    unpacked folder, ModelUri the model file in it, every InputMetadata attribute with Dims."""
    resource = copy.deepcopy(resource)
    properties = resource["Properties"]
    properties["CodeUri"] = f"{PACKAGE_FOLDER}/"
    properties["ModelUri"] = f"{PACKAGE_FOLDER}/{properties['ModelUri']}"
    for meta in properties.get("InputMetadata") or []:
        for attribute in (meta.get("Attributes") or []) if isinstance(meta, dict) else []:
            if isinstance(attribute, dict) and attribute.get("Dims") is None:
                attribute["Dims"] = list(DEFAULT_METADATA_DIMS)
    return {**document, "Resources": {key: resource}}


# --------------------------------------------------------------------------- the zip


class _opened:
    """``zipfile.ZipFile`` of ``data``, once its end record allows it (no zip64 end record, at
    most the member cap, a central directory of a size those members can have)."""

    def __init__(self, data: bytes):
        self.data = data
        self.archive: zipfile.ZipFile | None = None

    def __enter__(self) -> zipfile.ZipFile:
        _check_end_record(self.data)
        try:
            self.archive = zipfile.ZipFile(io.BytesIO(self.data))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, struct.error) as error:
            raise PackageRefused(f"the zip is not a readable zip archive: {inert(shorten(error))}") from None
        return self.archive

    def __exit__(self, *exc) -> None:
        if self.archive is not None:
            self.archive.close()


def _check_end_record(data: bytes) -> None:
    """The end of central directory record, found as zipfile finds it (right at the end, else
    the last one in the comment's reach)."""
    start = len(data) - _END_RECORD_SIZE
    if start < 0:
        raise PackageRefused("the zip is not a zip archive (too short)")
    if data[start : start + 4] != _END_RECORD:
        start = data.rfind(_END_RECORD, max(0, len(data) - _END_RECORD_SIZE - _MAX_COMMENT))
        if start < 0 or start + _END_RECORD_SIZE > len(data):
            raise PackageRefused("the zip is not a zip archive (no end of central directory record)")
    _, _, _, _, entries, directory_size, _, _ = struct.unpack(_END_RECORD_FORMAT, data[start : start + _END_RECORD_SIZE])
    members = int(limit("package_members"))
    if start >= _ZIP64_LOCATOR_SIZE and data[start - _ZIP64_LOCATOR_SIZE : start - _ZIP64_LOCATOR_SIZE + 4] == _ZIP64_LOCATOR:
        raise PackageRefused(
            "the zip has a zip64 end record (for more than 65,535 members or 4 GiB): above the package caps "
            "(DIALSGATE_MAX_PACKAGE_MEMBERS, DIALSGATE_MAX_PACKAGE_BYTES)"
        )
    if entries > members:
        raise PackageRefused(
            f"the zip declares {entries:,} members, above the cap of {members:,} (DIALSGATE_MAX_PACKAGE_MEMBERS)"
        )
    if directory_size > members * CENTRAL_DIRECTORY_BYTES_PER_MEMBER:
        raise PackageRefused(
            f"the zip's central directory holds {directory_size:,} bytes: more than {members:,} members "
            "(DIALSGATE_MAX_PACKAGE_MEMBERS) can take"
        )


def _member_parts(name: str) -> tuple[str, ...]:
    """The path components of a member's name, refused unless it is a plain relative path."""
    shown = _named(name)
    if not name or len(name) > MAX_NAME_CHARS:
        raise PackageRefused(f"member {shown}: a name of {len(name)} characters (1 to {MAX_NAME_CHARS})")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        raise PackageRefused(f"member {shown}: a control character in its name")
    if "\\" in name:
        raise PackageRefused(f"member {shown}: a backslash in its name (a Windows path; dismcli writes /)")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise PackageRefused(f"member {shown}: an absolute path (it must stay inside the unpacked folder)")
    parts = tuple(name[:-1].split("/") if name.endswith("/") else name.split("/"))
    if ".." in parts:
        raise PackageRefused(f"member {shown}: a '..' component (it would leave the unpacked folder)")
    if any(part in ("", ".") for part in parts):
        raise PackageRefused(f"member {shown}: an empty or '.' component (not a plain relative path)")
    return parts


def _judged_members(archive: zipfile.ZipFile) -> tuple[list[Member], dict[str, zipfile.ZipInfo]]:
    """Every member, judged from the central directory before anything is inflated or written."""
    infos = archive.infolist()
    count_cap = int(limit("package_members"))
    if len(infos) > count_cap:
        raise PackageRefused(
            f"the zip holds {len(infos):,} members, above the cap of {count_cap:,} (DIALSGATE_MAX_PACKAGE_MEMBERS)"
        )
    member_cap, total_cap = int(limit("package_member_bytes")), int(limit("package_unpacked_bytes"))
    members: list[Member] = []
    infos_of: dict[str, zipfile.ZipInfo] = {}
    folded: dict[tuple[str, ...], str] = {}  # normalised, case-folded path -> name
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    total = 0
    for info in infos:
        name = info.filename
        shown = _named(name)
        # zipfile drops what follows a NUL in a name: the name in the directory has one.
        if info.orig_filename != name:
            raise PackageRefused(f"member {shown}: a NUL character in its name")
        parts = _member_parts(name)
        if name in infos_of:
            raise PackageRefused(f"member {shown}: a duplicate name (two members called {shown})")
        normal = tuple(unicodedata.normalize("NFKC", part).casefold() for part in parts)
        if normal in folded:
            raise PackageRefused(
                f"member {shown} and member {_named(folded[normal])}: one path twice (names that differ only by case, "
                "Unicode normalisation or a trailing /: one file on a case-insensitive or normalising file system)"
            )
        folded[normal] = name
        if info.flag_bits & ENCRYPTION_FLAGS:
            raise PackageRefused(f"member {shown}: encrypted (flag bits {info.flag_bits:#06x}); dismcli encrypts nothing")
        if info.compress_type not in COMPRESSION_METHODS:
            raise PackageRefused(
                f"member {shown}: compression method {info.compress_type} (dismcli writes deflated; stored and deflated are read)"
            )
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise PackageRefused(f"member {shown}: a symbolic link (mode {mode:#o}); nothing behind it is unpacked")
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            raise PackageRefused(f"member {shown}: a device (mode {mode:#o})")
        if kind == stat.S_IFIFO:
            raise PackageRefused(f"member {shown}: a FIFO (named pipe, mode {mode:#o})")
        if kind == stat.S_IFSOCK:
            raise PackageRefused(f"member {shown}: a socket (mode {mode:#o})")
        folder = name.endswith("/")
        if kind not in (0, stat.S_IFDIR if folder else stat.S_IFREG):
            raise PackageRefused(f"member {shown}: mode {mode:#o} is not a plain {'folder' if folder else 'file'}")
        if folder and (info.file_size or info.compress_size):
            raise PackageRefused(f"member {shown}: a folder entry holding {info.file_size:,} bytes")
        if info.file_size > member_cap:
            raise PackageRefused(
                f"member {shown}: declares {info.file_size:,} bytes inflated, above the cap of {member_cap:,} "
                "(DIALSGATE_MAX_PACKAGE_MEMBER_BYTES)"
            )
        total += info.file_size
        if total > total_cap:
            raise PackageRefused(
                f"the zip's members declare more than {total_cap:,} bytes inflated (DIALSGATE_MAX_PACKAGE_UNPACKED_BYTES), "
                f"reached at member {shown}"
            )
        (folders if folder else files).add(normal)
        members.append(Member(name=name, size=info.file_size, folder=folder))
        infos_of[name] = info
    for path in files:
        for depth in range(1, len(path)):
            if path[:depth] in files:
                owner = folded[path[:depth]]
                raise PackageRefused(f"member {_named(owner)} is a file and also the folder of member {_named(folded[path])}")
    return members, infos_of


def _prepare(into: Path) -> None:
    if into.is_symlink():
        raise PackageRefused(f"{into} is a symbolic link: the zip is unpacked into a fresh folder only")
    if into.exists():
        if not into.is_dir() or any(into.iterdir()):
            raise PackageRefused(f"{into} is not an empty folder: the zip is unpacked into a fresh folder only")
    else:
        into.mkdir(parents=True)
    into.chmod(0o755)


def _make_folder(path: Path) -> None:
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise PackageRefused(f"{path.name} is not a folder") from None
    os.chmod(path, 0o755, follow_symlinks=False)


def _extract(archive: zipfile.ZipFile, members: list[Member], infos: dict[str, zipfile.ZipInfo], folder: Path) -> None:
    """Each member as a plain file (``O_EXCL``, 0644) or folder (0755) under ``folder``, its
    inflated bytes counted against the caps (the declared sizes are not trusted)."""
    member_cap, total_cap = int(limit("package_member_bytes")), int(limit("package_unpacked_bytes"))
    _make_folder(folder)
    total = 0
    for member in members:
        parts = _member_parts(member.name)
        for depth in range(1, len(parts) + (1 if member.folder else 0)):
            _make_folder(folder.joinpath(*parts[:depth]))
        if member.folder:
            continue
        target = folder.joinpath(*parts)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        os.fchmod(descriptor, 0o644)
        written = 0
        try:
            with os.fdopen(descriptor, "wb") as out, archive.open(infos[member.name]) as stream:
                for block in iter(lambda: stream.read(READ_BLOCK), b""):
                    written += len(block)
                    if written > member_cap or total + written > total_cap:
                        raise PackageRefused(
                            f"member {_named(member.name)} inflates beyond "
                            + (
                                f"the cap of {member_cap:,} bytes (DIALSGATE_MAX_PACKAGE_MEMBER_BYTES)"
                                if written > member_cap
                                else f"the cap of {total_cap:,} bytes for every member (DIALSGATE_MAX_PACKAGE_UNPACKED_BYTES)"
                            )
                        )
                    out.write(block)
        except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError, struct.error) as error:
            raise PackageRefused(f"member {_named(member.name)} is corrupt: {inert(shorten(error))}") from None
        if written != member.size:
            raise PackageRefused(
                f"member {_named(member.name)} inflates to {written:,} bytes, not the {member.size:,} it declares"
            )
        total += written


def _write_new(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    os.fchmod(descriptor, 0o644)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
