"""Model files that are positively not pickles: recognised by their structure, not by their name.

DISM's XGBoost and LightGBM resources, and handlers that load ONNX with onnxruntime, ship model
files that hold no Python objects. The pickle checks do not apply to them. Recognition is
positive and complete: the whole file must parse as the format (a ``.onnx`` name on a pickle
is audited as a pickle); only an XGBoost JSON of more values than STRUCTURE_CAP is named by its
first and last keys, as a file that opens with ``{`` is no pickle (the polyglot walk still runs).
Parsed here with the standard library only, since the gate's own environment need not have onnx,
xgboost or lightgbm; nothing in a file is ever executed.

    recognise(path) -> Format | None      # NotPlain: a link, a FIFO, or more than RECOGNISE_CAP bytes

Files are read through ``dialsgate.plainfiles`` only (no link followed, nothing but a regular file).
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dialsgate.plainfiles import NotPlain, OverCap, open_plain, read_plain
from dialsgate.pysource import literal

#: Recognition parses a whole file in memory: a larger model file is not read (and not recognised).
RECOGNISE_CAP = 512 * 2**20
#: At most this many JSON values, or untyped UBJ items, are made into Python objects to recognise
#: a file: a file of tiny values (``[{},{},...]``) grew about 25-fold in memory (5.3 GB for
#: 200 MiB), and a UBJ array of nulls took 87 s. XGBoost's own files hold far fewer (its weights
#: are typed UBJ arrays, skipped whole; the corpus's JSON booster, 120 trees of depth 4, holds
#: 10,071 values, so 1,000 trees of depth 8 about 1.4 million).
STRUCTURE_CAP = 5_000_000


class TooLargeToRecognise(NotPlain):
    """A file larger than RECOGNISE_CAP, or of more values than STRUCTURE_CAP: not parsed as ONNX,
    XGBoost, ... (the pickle audit still streams it)."""


class _BeyondStructureCap(ValueError):
    """A reader stopped at STRUCTURE_CAP: the file may be of its format, too large to say."""


@dataclass(frozen=True)
class Format:
    name: str  # "ONNX", "XGBoost JSON", ...
    detail: str  # what was read, for the reason of a "not applicable" row


def recognise(path) -> Format | None:
    """The format of ``path`` when it is one of the non-pickle formats, else None.

    Raises ``NotPlain`` for a path that is not a plain file, or one larger than ``RECOGNISE_CAP``
    (its size is taken with fstat first: a sparse file is never read).
    """
    path = Path(path)
    try:
        data = read_plain(path, RECOGNISE_CAP)  # its size taken first: a sparse file is never read
    except OverCap:
        raise TooLargeToRecognise(
            f"{path.name} holds more than RECOGNISE_CAP ({RECOGNISE_CAP:,} bytes): "
            f"it is not parsed as ONNX, XGBoost, LightGBM or .npy/.npz"
        ) from None
    beyond = None
    for reader in (_onnx, _xgboost_json, _xgboost_ubj, _lightgbm_text, _npy, _npz):
        try:
            found = reader(data)
        except _BeyondStructureCap as error:  # another reader may still recognise it
            beyond, found = beyond or str(error), None
        except (ValueError, KeyError, IndexError, TypeError, SyntaxError, struct.error, RecursionError, zipfile.BadZipFile):
            found = None
        if found is not None:
            return found
    if beyond:
        raise TooLargeToRecognise(f"{path.name} {beyond}")
    return None


# --------------------------------------------------------------------------- ONNX (protobuf ModelProto)

#: ModelProto's fields (onnx.proto3): number -> wire type (0 varint, 2 length-delimited).
_MODEL_PROTO_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _onnx(data: bytes) -> Format | None:
    position, seen, ir_version = 0, set(), None
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if _MODEL_PROTO_FIELDS.get(number) != wire:
            return None
        if wire == 0:
            value, position = _varint(data, position)
            if number == 1:
                ir_version = value
        else:
            length, position = _varint(data, position)
            position += length
            if position > len(data):
                return None
        seen.add(number)
    if ir_version is None or 7 not in seen:  # an ir_version and a graph
        return None
    return Format("ONNX", f"protobuf ModelProto, ir_version {ir_version}")


# --------------------------------------------------------------------------- XGBoost


def _xgboost_document(document) -> Format | None:
    if isinstance(document, dict) and isinstance(document.get("learner"), dict) and isinstance(document.get("version"), list):
        version = ".".join(str(part) for part in document["version"])
        return Format("XGBoost", f"booster model written by XGBoost {version}")
    return None


_XGBOOST_HEAD = re.compile(rb'\s*\{\s*"learner"\s*:\s*\{')
_XGBOOST_TAIL = re.compile(rb'"version"\s*:\s*\[\s*(\d{1,4})\s*,\s*(\d{1,4})\s*,\s*(\d{1,4})\s*\]\s*\}\s*\Z')


def _xgboost_json(data: bytes) -> Format | None:
    if not data.lstrip()[:1] == b"{":
        return None
    # Every value but the first follows a comma or opens a container (commas in strings count too).
    values = data.count(b",") + data.count(b"[") + data.count(b"{")
    if values > STRUCTURE_CAP:
        # Too many to parse: XGBoost's own first and last keys (it writes them sorted) will do, since
        # a file that opens with "{" is no pickle at all (no opcode is "{"; the polyglot walk still runs).
        head, tail = _XGBOOST_HEAD.match(data[:200]), _XGBOOST_TAIL.search(data[-200:])
        if head and tail:
            version = ".".join(part.decode() for part in tail.groups())
            return Format(
                "XGBoost JSON",
                f"booster model written by XGBoost {version} (its first and last keys; {values:,} values, not parsed)",
            )
        raise _BeyondStructureCap(
            f"may hold {values:,} JSON values, more than STRUCTURE_CAP ({STRUCTURE_CAP:,}): it is not parsed as XGBoost JSON"
        )
    found = _xgboost_document(json.loads(data))
    return Format("XGBoost JSON", found.detail) if found else None


def _xgboost_ubj(data: bytes) -> Format | None:
    if data[:1] != b"{":
        return None
    document, end = _UBJReader(data).value(0)
    if end != len(data):
        return None
    found = _xgboost_document(document)
    return Format("XGBoost UBJ", found.detail) if found else None


class _UBJReader:
    """Universal Binary JSON (as XGBoost writes it), big-endian, optimised containers included."""

    NUMBERS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q", b"d": ">f", b"D": ">d"}

    def __init__(self, data: bytes):
        self.data = data
        self.made = 0  # untyped values read so far (STRUCTURE_CAP)

    def _number(self, marker: bytes, position: int) -> tuple[float, int]:
        layout = self.NUMBERS[marker]
        size = struct.calcsize(layout)
        return struct.unpack_from(layout, self.data, position)[0], position + size

    def _length(self, position: int) -> tuple[int, int]:
        marker = self.data[position : position + 1]
        if marker not in (b"i", b"U", b"I", b"l", b"L"):
            raise ValueError("bad length")
        length, position = self._number(marker, position + 1)
        if length < 0:
            raise ValueError("negative length")
        return int(length), position

    def _string(self, position: int) -> tuple[str, int]:
        length, position = self._length(position)
        if position + length > len(self.data):
            raise ValueError("truncated string")
        return self.data[position : position + length].decode("utf-8"), position + length

    def value(self, position: int, marker: bytes | None = None):
        if marker is None:
            marker = self.data[position : position + 1]
            position += 1
        if marker in self.NUMBERS:
            return self._number(marker, position)
        if marker in (b"Z", b"T", b"F"):
            return {b"Z": None, b"T": True, b"F": False}[marker], position
        if marker == b"C":
            return self.data[position : position + 1].decode("ascii"), position + 1
        if marker in (b"S", b"H"):
            return self._string(position)
        if marker in (b"[", b"{"):
            return self._container(marker, position)
        raise ValueError(f"unknown UBJ marker {marker!r}")

    def _container(self, opening: bytes, position: int):
        typed = count = None
        if self.data[position : position + 1] == b"$":
            typed = self.data[position + 1 : position + 2]
            position += 2
        if self.data[position : position + 1] == b"#":
            count, position = self._length(position + 1)
        elif typed is not None:
            raise ValueError("typed container without a count")
        items = {} if opening == b"{" else []
        closing = b"}" if opening == b"{" else b"]"
        index = 0
        while True:
            if count is None:
                if self.data[position : position + 1] == closing:
                    return items, position + 1
                if position >= len(self.data):
                    raise ValueError("unterminated container")
            elif index == count:
                return items, position
            if opening == b"{":
                key, position = self._string(position)
            if typed in self.NUMBERS and opening == b"[":
                # A typed numeric array (the trees' weights): skip it whole, its values are not needed.
                size = struct.calcsize(self.NUMBERS[typed])
                position += size * count
                if position > len(self.data):
                    raise ValueError("truncated typed array")
                return items, position
            self.made += 1
            if self.made > STRUCTURE_CAP:
                raise _BeyondStructureCap(
                    f"holds more than STRUCTURE_CAP ({STRUCTURE_CAP:,}) UBJ values: it is not parsed as XGBoost UBJ"
                )
            item, position = self.value(position, typed)
            if opening == b"{":
                items[key] = item
            else:
                items.append(item)
            index += 1


# --------------------------------------------------------------------------- LightGBM


def _lightgbm_text(data: bytes) -> Format | None:
    # Its first lines only, as bytes: the whole text split into lines took about 25 times the
    # file's size in memory (a file of 3-byte lines), before its first line was even looked at.
    lines = data[:4096].split(b"\n", 5)
    if lines[0].strip() != b"tree":
        return None
    version = next((line.split(b"=", 1)[1].strip() for line in lines[1:5] if line.startswith(b"version=")), None)
    if version is None or b"end of trees" not in data:
        return None
    return Format("LightGBM text", f"LightGBM model text, format {version[:40].decode('utf-8')}")


# --------------------------------------------------------------------------- numpy arrays without objects

_NPY_MAGIC = b"\x93NUMPY"


def _npy_header(data: bytes) -> tuple[dict, int]:
    if data[:6] != _NPY_MAGIC:
        raise ValueError("not .npy")
    major = data[6]
    if major == 1:
        (length,), start = struct.unpack_from("<H", data, 8), 10
    elif major in (2, 3):
        (length,), start = struct.unpack_from("<I", data, 8), 12
    else:
        raise ValueError(f"unknown .npy version {major}")
    header = literal(data[start : start + length].decode("latin1"))
    if not isinstance(header, dict) or "descr" not in header:
        raise ValueError("bad .npy header")
    return header, start + length


#: The descr strings of numeric and flexible dtypes without Python objects, as numpy writes them.
#: Decided by this grammar, never by looking for 'O': numpy also reads 'object', 'object_',
#: 'object0', ... as the object dtype, and any descr it reads that the grammar does not know
#: counts as holding objects (so its data is audited as a pickle, or the file fails closed).
_NUMERIC_DESCR = re.compile(
    r"[<>|=]?(?:\?|b1|[iu][1248]|f(?:2|4|8|10|12|16)|c(?:8|16|20|24|32)|[VSUa]\d+|[Mm]8(?:\[\d*[A-Za-z]+\])?)\Z"
)
#: How deep a structured dtype may nest before it counts as holding objects.
_DESCR_DEPTH = 32


def _holds_objects(descr, depth: int = 0) -> bool:
    """A dtype description that may name Python objects, at any depth of a structured dtype: anything
    but a descr string of the numeric grammar, or a list of (name, descr[, shape]) fields of them."""
    if isinstance(descr, str):
        return not _NUMERIC_DESCR.match(descr)
    if not isinstance(descr, list) or not descr or depth > _DESCR_DEPTH:
        return True
    for field in descr:
        if not isinstance(field, tuple) or len(field) not in (2, 3):
            return True
        name, inner = field[0], field[1]
        if not isinstance(name, str) and not (
            isinstance(name, tuple) and len(name) == 2 and all(isinstance(part, str) for part in name)
        ):
            return True
        if len(field) == 3 and not (
            isinstance(field[2], tuple) and all(isinstance(n, int) and not isinstance(n, bool) for n in field[2])
        ):
            return True
        if _holds_objects(inner, depth + 1):
            return True
    return False


def _npy(data: bytes) -> Format | None:
    header, _ = _npy_header(data)
    if _holds_objects(header["descr"]):
        return None
    return Format("NumPy .npy", f"array {header['descr']} of shape {tuple(header.get('shape', ()))}, no Python objects")


def _npz(data: bytes) -> Format | None:

    if data[:4] != b"PK\x03\x04":
        return None
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        if not names or not all(name.endswith(".npy") for name in names):
            return None
        for name in names:
            with archive.open(name) as member:
                header, _ = _npy_header(member.read(4096))
            if _holds_objects(header["descr"]):
                return None
    return Format("NumPy .npz", f"{len(names)} arrays, no Python objects")


def npy_holds_objects(path) -> bool:
    """An .npy file whose array holds Python objects (its data is a pickle). Unreadable: True."""
    try:
        with open_plain(path) as stream:
            header, _ = _npy_header(stream.read(65536))
    except (OSError, ValueError, SyntaxError, struct.error):
        return True
    return _holds_objects(header["descr"])


def npy_data_offset(path) -> int:
    with open_plain(path) as stream:
        return _npy_header(stream.read(65536))[1]
