"""A static pickle audit: read the opcodes of a model file, build nothing, pass only what is known safe.

The walk reads a file's bytes (through ``dialsgate.plainfiles`` only) opcode by opcode, with the
opcode table of ``pickletools``, and keeps a symbolic stack and memo: strings, numbers, tuples,
small dicts, marks, global references, and "an object made from global X". Nothing is ever
unpickled, imported or opened besides the file itself (and, for the folder's own classes, the
folder's module sources, parsed with ``ast``). For every global it knows the full name (module
and qualname; protocol 4's ``STACK_GLOBAL`` takes both from the stack) and how the pickle uses it:

- called by ``REDUCE`` (or ``INST``/``OBJ``): it runs with the pickle's arguments;
- instantiated: ``NEWOBJ``/``NEWOBJ_EX``, or the class given to ``copyreg._reconstructor``,
  ``copyreg.__newobj__``/``__newobj_ex__`` or numpy's ``_reconstruct``;
- state set by ``BUILD`` (its ``__setstate__`` runs);
- passed along (stored as a value: a ``FunctionTransformer(func=...)`` calls it later).

Joblib's container is followed statically: after the ``BUILD`` of a
``joblib.numpy_pickle.NumpyArrayWrapper`` joblib reads an alignment padding and the raw array bytes
straight from the stream (their length from the recorded shape and dtype), or, for an object
dtype, a nested pickle, walked the same way. Compressed joblibs are decompressed as a stream
under ``DECOMPRESSED_CAP``. What the walk cannot model fails closed: the file is not audited.

Whether a global is safe is decided by ``pickle-allowlist.toml`` (data, each entry with its reason)
and, for the folder's own classes, by the AST of the server folder. ``pickle-danger.toml`` only
explains why a refused global is dangerous; it never decides.

    audit_model_file(path, code_dir=None) -> Audit   # the model file (any format)
    audit_any(path, code_dir=None) -> Audit          # another pickle of the server folder
    Audit.refusal() -> str | None                    # None: safe to load
    Audit.safe_to_load, Audit.to_resolve()           # image-package globals to resolve
"""

from __future__ import annotations

import ast
import bz2
import fnmatch
import io
import lzma
import os
import pickletools
import re
import struct
import sys
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from dialsgate.modelfile.formats import Format, TooLargeToRecognise, npy_data_offset, npy_holds_objects, recognise
from dialsgate.plainfiles import NotPlain, inside, open_plain, read_plain, walk_plain
from dialsgate.pysource import SourceTooLarge, parse

HERE = Path(__file__).resolve().parent
ALLOWLIST_FILE = HERE / "pickle-allowlist.toml"
DANGER_FILE = HERE / "pickle-danger.toml"
#: The serving images' profiles (data only, read as files: Python's standard library and the image's packages).
PROFILES_DIR = HERE.parent / "environment" / "profiles"

#: A compressed joblib is inflated as a stream; past this many bytes it is refused (a bomb).
DECOMPRESSED_CAP = 2**30
#: Strings and bytes longer than this are skipped (kept as their length): names are short.
KEPT_STRING = 4096
#: A protocol-0 argument (a line: GLOBAL's names, INT, STRING, UNICODE) longer than this is refused.
LINE_CAP = 2**20
#: At most this many memo entries and stack items: the walk's own memory stays small.
MEMO_CAP = 2_000_000
STACK_CAP = 2_000_000
#: Tuples and dicts with more items than this are kept without their items (recorded when consumed).
KEPT_ITEMS = 64
#: A folder module's source is read up to this size to find its classes.
SOURCE_CAP = 4 * 2**20
#: Raw array bytes are skipped in chunks of this size.
CHUNK = 2**20

LEGACY_WRAPPER_WHY = (
    "joblib's legacy array wrapper points at another file; joblib has not written it since 0.10 (2016), "
    "and loading it unpickles that other file"
)


class NotAudited(Exception):
    """The walk met something it cannot model: the file fails closed."""


# --------------------------------------------------------------------------- symbols


class _Mark:
    pass


@dataclass(eq=False)
class Global:
    module: str
    name: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.module, self.name)


@dataclass(eq=False)
class Made:
    """An object the pickle makes from a global: an instance of a class, or what a callable returns."""

    origin: Global
    klass: Global | None = None  # the class of the object when known (an instance, a reconstructor's class)
    args: tuple = ()
    state: dict = field(default_factory=dict)  # what BUILD set (kept small: joblib's wrapper, dtypes)
    dtype_state: tuple | None = None


@dataclass(eq=False)
class Long:
    """A string or bytes value too long to keep: only its length."""

    kind: str
    length: int


class Opaque:
    """A value whose content the walk does not need (a list, a set, an array, a big container)."""


class _List(list):
    """A list of the pickle (its items are not kept): whether one may be a (name, value) pair that a
    BUILD would set as an attribute (``__dict__.update`` takes pairs)."""

    pairs = False


def _names_an_attribute(item) -> bool:
    """A dunder name, or a pair whose name is a dunder or a string the walk cannot read."""
    if isinstance(item, str):
        return _dunder(item)
    if isinstance(item, (tuple, _List)) and len(item) == 2:
        return _names_an_attribute(item[0]) or isinstance(item[0], (Made, Long, Opaque))
    return isinstance(item, _List) and item.pairs


class _Dict(dict):
    """A dict of the pickle: its first KEPT_ITEMS keys, and what the walk saw of all its keys."""

    dunder = False  # a key is a dunder name (a BUILD state setting __setstate__, __class__, ...)
    unknown_keys = False  # a key the walk cannot read (made by a call, an unhashable symbol)
    build_state = False  # already handed to an object's BUILD
    truncated = False  # keys past KEPT_ITEMS were not kept


OPAQUE = Opaque()


# --------------------------------------------------------------------------- uses


CALLED, INSTANTIATED, BUILT, PASSED = "called by REDUCE", "instantiated", "state set by BUILD", "passed along"
CALLED_INST = "called by INST/OBJ"
#: APPENDS calls the object's extend (or append), SETITEM(S) its __setitem__: only containers may take them.
ITEMS = "items added by APPEND(S)/SETITEM(S)"


@dataclass
class GlobalUse:
    module: str
    name: str
    uses: set = field(default_factory=set)

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"

    def described(self) -> str:
        order = [CALLED, CALLED_INST, INSTANTIATED, BUILT, ITEMS, PASSED]
        return f"{self.dotted} ({', '.join(u for u in order if u in self.uses) or PASSED})"


@dataclass
class Audit:
    path: Path | None = None
    #: Every global with how the pickle uses it, in order of appearance.
    uses: dict = field(default_factory=dict)
    error: str | None = None  # the walk could not model the file: fails closed
    refused: list = field(default_factory=list)  # (GlobalUse, why)
    #: (GlobalUse, why) of globals whose module exists neither in the server folder nor in Python or
    #: the image: a load fails on them before anything runs, so they are a resolution defect
    #: (check_pickle_globals_resolvable), not a safety one; the file is still loaded nowhere.
    unresolvable: list = field(default_factory=list)
    folder_globals: list = field(default_factory=list)  # (module, name): classes of the server folder (AST)
    from_main: list = field(default_factory=list)  # names of __main__ classes (no server has them)
    format: Format | None = None  # positively another format (ONNX, ...): nothing to audit
    polyglot: str | None = None  # another format that is also a pickle
    calls: list = field(default_factory=list)  # (callable Global, its arguments) of every REDUCE

    # -- compatibility with the older list of (module, name)
    @property
    def globals(self) -> list[tuple[str, str]]:
        return list(self.uses)

    @property
    def is_pickle(self) -> bool:
        return self.format is None

    @property
    def complete(self) -> bool:
        return self.error is None

    @property
    def safe_to_load(self) -> bool:
        return self.refusal() is None

    def dangerous(self) -> list:
        return list(self.refused)

    def refusal(self) -> str | None:
        """Why nothing may load the file (None when it is safe to load)."""
        name = self.path.name if self.path else "the model file"
        if self.polyglot:
            return f"{name} {self.polyglot}"
        if self.format is not None:
            return None
        if self.refused:
            listed = "; ".join(f"{use.described()}: {why}" for use, why in self.refused)
            return f"{name} references globals not known to be safe: {listed}"
        if self.error:
            return f"{name} could not be fully audited ({self.error})"
        if self.unresolvable:
            return f"{name} {self.resolves_nowhere()}"
        return None

    def resolves_nowhere(self) -> str | None:
        """The globals whose module is in neither the server folder nor Python nor the image."""
        if not self.unresolvable:
            return None
        listed = "; ".join(f"{use.described()}: {why}" for use, why in self.unresolvable)
        return f"references globals that resolve neither from the server folder nor from the image: {listed}"

    def to_resolve(self) -> list[tuple[str, str]]:
        """Globals that must resolve from the image's packages (the folder's classes are judged by the AST)."""
        folder = set(self.folder_globals)
        return [key for key in self.uses if key not in folder]


# --------------------------------------------------------------------------- the allowlist


@dataclass(frozen=True)
class Rule:
    kind: str  # "class", "callable", "passable", "excluded"
    modules: tuple
    names: tuple
    reason: str
    args: str = "any"
    build: bool = False  # a callable whose result may be BUILD-set: it returns its package's own types
    items: bool = False  # a container class whose append/extend/__setitem__ only store (APPENDS, SETITEMS)

    def matches(self, module: str, name: str) -> bool:
        return any(fnmatch.fnmatchcase(module, m) for m in self.modules) and any(fnmatch.fnmatchcase(name, n) for n in self.names)


@cache
def allowlist() -> tuple[Rule, ...]:
    with open(ALLOWLIST_FILE, "rb") as stream:
        data = tomllib.load(stream)
    rules = []
    for kind in ("excluded", "class", "callable", "passable"):
        for entry in data.get(kind, []):
            modules = entry["modules"] if "modules" in entry else [entry["module"]]
            names = entry["names"] if "names" in entry else [entry.get("name", "*")]
            rules.append(
                Rule(
                    kind,
                    tuple(modules),
                    tuple(names),
                    entry["reason"],
                    entry.get("args", "any"),
                    entry.get("build", False),
                    entry.get("items", False),
                )
            )
    return tuple(rules)


def _rules(kind: str, module: str, name: str) -> list[Rule]:
    return [rule for rule in allowlist() if rule.kind == kind and rule.matches(module, name)]


def _exact(kind: str, module: str, name: str) -> list[Rule]:
    """The entries naming exactly this global (no pattern in the name): for dotted or private names."""
    found = []
    for rule in allowlist():
        if rule.kind != kind or not any(fnmatch.fnmatchcase(module, m) for m in rule.modules):
            continue
        # a pattern that itself names private functions (``__pyx_unpickle_*``) covers them, never a dotted name
        if name in rule.names or (
            "." not in name and any(n.startswith("_") and fnmatch.fnmatchcase(name, n) for n in rule.names)
        ):
            found.append(rule)
    return found


@cache
def _dangers() -> tuple:
    with open(DANGER_FILE, "rb") as stream:
        data = tomllib.load(stream)
    return tuple((entry["module"], entry.get("name", "*"), entry["why"]) for entry in data["danger"])


def danger_of(module: str, name: str) -> str | None:
    """Why a known-dangerous global is dangerous (only to explain a refusal, never to decide)."""
    for pattern_module, pattern_name, why in _dangers():
        top = name.split(".")[0]
        if fnmatch.fnmatchcase(module, pattern_module) and (
            fnmatch.fnmatchcase(name, pattern_name) or fnmatch.fnmatchcase(top, pattern_name)
        ):
            return why
    # a dotted name reaching a module (logging.os.system): explain by the module it reaches
    parts = f"{module}.{name}".split(".")
    for cut in range(1, len(parts) - 1):
        inner_module, inner_name = ".".join(parts[cut:-1]), parts[-1]
        for pattern_module, pattern_name, why in _dangers():
            if fnmatch.fnmatchcase(inner_module, pattern_module) and fnmatch.fnmatchcase(inner_name, pattern_name):
                return why
    return None


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _dunder(part: str) -> bool:
    return part.startswith("__") and part.endswith("__") and len(part) > 4


# --------------------------------------------------------------------------- the folder's own classes (AST)


def _profile_modules(folder: Path) -> set[str]:
    """Top-level import names one image profile names: its Python's standard library, its
    distributions (normalised, and their import names that differ)."""
    names: set[str] = set()
    stdlib = folder / "stdlib.txt"
    if stdlib.is_file():
        names.update(stdlib.read_text().split())
    for packages in (folder / "image-packages.txt", folder / "core.txt"):
        if not packages.is_file():
            continue
        for line in packages.read_text().splitlines():
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*==", line)
            if match:
                names.add(re.sub(r"[-.]+", "_", match[1]).lower())
    profile = folder / "profile.toml"
    if profile.is_file():
        with open(profile, "rb") as stream:
            names.update(name.split(".")[0] for name in tomllib.load(stream).get("import_names", {}))
    return names


@cache
def python_and_image_modules() -> frozenset[str]:
    """Top-level module names a folder module never vouches for: Python's standard library and
    builtin modules (this Python's and every image profile's), the image's packages, and every
    package the allowlist names."""
    names = set(sys.builtin_module_names) | set(getattr(sys, "stdlib_module_names", ()))
    if PROFILES_DIR.is_dir():
        for folder in sorted(PROFILES_DIR.iterdir()):
            if folder.is_dir():
                names |= _profile_modules(folder)
    for rule in allowlist():
        for module in rule.modules:
            top = module.split(".")[0]
            if not any(character in top for character in "*?["):
                names.add(top)
    return frozenset(names)


class FolderCode:
    """What the server folder's modules define, read from their source (never imported)."""

    def __init__(self, code_dir: Path | None):
        self.code_dir = Path(code_dir) if code_dir is not None else None
        self._trees: dict[str, ast.Module | None | str] = {}

    def owns(self, module: str) -> bool:
        """The module's top-level package is a module or package of the folder (and not a module
        Python or the image provides: see ``shadows``)."""
        top = module.split(".")[0]
        return top not in python_and_image_modules() and self.has(top)

    def shadows(self, module: str) -> bool:
        """The folder holds a module named like one of Python's standard library or of the image's
        packages: the unpickler takes Python's own (already imported, or first on the path), so the
        folder's source says nothing about what a load finds."""
        top = module.split(".")[0]
        return top in python_and_image_modules() and self.has(top)

    def has(self, top: str) -> bool:
        if self.code_dir is None:
            return False
        for candidate in (f"{top}.py", top):
            try:
                if inside(self.code_dir, candidate).exists():
                    return True
            except NotPlain:
                return True  # a link in the folder named like the module: judged (and refused) as folder code
        return False

    def _source(self, module: str):
        if module in self._trees:
            return self._trees[module]
        parts = module.split(".")
        tree: ast.Module | str | None = None
        for relative in ("/".join(parts) + ".py", "/".join(parts) + "/__init__.py"):
            try:
                path = inside(self.code_dir, relative)
                if not path.is_file():
                    continue
                tree = parse(read_plain(path, SOURCE_CAP), filename=relative)
            except NotPlain as error:
                tree = f"its source is not readable as a plain file ({error})"
            except SourceTooLarge as error:
                tree = f"its source is not parsed: {error}"
            except (SyntaxError, ValueError) as error:
                tree = f"its source does not parse ({type(error).__name__})"
            break
        self._trees[module] = tree
        return tree

    def judge(self, module: str, name: str, uses: set) -> str | None:
        """None when ``module.name`` is a class (or, only passed along, a function) the folder's source
        defines at the top level of the module (a nested class for a dotted name); else why not."""
        tree = self._source(module)
        where = module.replace(".", "/") + ".py"
        if tree is None:
            return f"the server folder has no module {module} (no {where})"
        if isinstance(tree, str):
            return f"{where}: {tree}"
        body, parts = tree.body, name.split(".")
        for depth, part in enumerate(parts):
            if _dunder(part):
                return f"{name} names a dunder attribute"
            bound = [node for node in body if part in _bound_names(node)]
            found = [node for node in bound if isinstance(node, ast.ClassDef) and node.name == part]
            functions = [node for node in bound if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
            last = depth == len(parts) - 1
            if last and not found and len(functions) == 1 == len(bound) and depth == 0 and uses <= {PASSED}:
                if _rebound_elsewhere(tree, part):
                    return f"{where} rebinds {part} (a global statement)"
                return None  # a function of the folder, only stored (a FunctionTransformer's func)
            if not found:
                if any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in bound):
                    return f"{where} does not define a class {'.'.join(parts[: depth + 1])}: it imports that name"
                return f"{where} defines no class {'.'.join(parts[: depth + 1])} at the top level"
            if len(bound) > 1:
                return f"{where} binds {part} more than once (the class is not what a load finds)"
            if depth == 0 and _rebound_elsewhere(tree, part):
                return f"{where} rebinds {part} (a global statement)"
            node = found[0]
            if _mentions_array_wrapper(tree):
                return (
                    f"{where} names joblib's array wrapper: a class of it may be one (joblib would read "
                    f"array bytes from the stream after its BUILD)"
                )
            if any("__class__" in _bound_names(statement) for statement in node.body):
                return f"{where}: class {part} binds __class__ (isinstance would take it for another class)"
            body = node.body
        return None


def _bound_names(node) -> set[str]:
    """Names a top-level statement binds in its module."""
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
            names.add(child.id)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in child.names)
        elif isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and child is not node:
            names.add(child.name)
    return names


def _mentions_array_wrapper(tree: ast.Module) -> bool:
    """The module names joblib's array wrappers or their module, however it imports them (an alias
    base class, an attribute of joblib): isinstance checks after every BUILD would then match."""
    for node in ast.walk(tree):
        texts = []
        if isinstance(node, ast.Name):
            texts.append(node.id)
        elif isinstance(node, ast.Attribute):
            texts.append(node.attr)
        elif isinstance(node, ast.alias):
            texts.append(node.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            texts.append(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
        if any("ArrayWrapper" in text or "numpy_pickle" in text for text in texts):
            return True
    return False


def _rebound_elsewhere(tree: ast.Module, name: str) -> bool:
    return any(isinstance(node, ast.Global) and name in node.names for node in ast.walk(tree))


# --------------------------------------------------------------------------- reading the stream


class _Source:
    """The bytes the unpickler reads: a plain file, or a decompressed stream under a cap."""

    def __init__(self, raw, decompressor=None, what: str = ""):
        self.raw = raw
        self.decompressor = decompressor
        self.what = what
        self.buffer = bytearray()
        self.position = 0
        self.inflated = 0
        self.ended = decompressor is None

    def _fill(self, wanted: int) -> None:
        idle = 0
        while len(self.buffer) < wanted:
            if self.decompressor is None:
                data = self.raw.read(max(wanted - len(self.buffer), CHUNK))
                if not data:
                    return
                self.buffer += data
                continue
            room = DECOMPRESSED_CAP - self.inflated
            if self.decompressor.eof:
                return
            data = self.raw.read(CHUNK) if self.decompressor.needs_input else b""
            out = self.decompressor.decompress(data, min(CHUNK, room + 1))
            idle = idle + 1 if not out and not data else 0
            if idle > 2 and not self.decompressor.eof:
                raise NotAudited(f"the {self.what} stream is truncated")
            self.inflated += len(out)
            if self.inflated > DECOMPRESSED_CAP:
                raise NotAudited(
                    f"the {self.what} stream inflates beyond {DECOMPRESSED_CAP:,} bytes "
                    f"(DECOMPRESSED_CAP, the cap of a decompressed model file)"
                )
            self.buffer += out

    def read(self, size: int) -> bytes:
        self._fill(size)
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        self.position += len(data)
        return data

    def exactly(self, size: int, what: str) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise NotAudited(f"the stream ends inside {what}")
        return data

    def skip(self, size: int, what: str) -> None:
        if self.decompressor is None and size > len(self.buffer):  # a plain file: seek over the bytes
            size -= len(self.buffer)
            self.position += len(self.buffer)
            self.buffer.clear()
            here = self.raw.tell()
            if here + size > os.fstat(self.raw.fileno()).st_size:
                raise NotAudited(f"the stream ends inside {what}")
            self.raw.seek(here + size)
            self.position += size
            return
        while size > 0:
            step = min(size, CHUNK)
            self.exactly(step, what)
            size -= step

    def readline(self) -> bytes:
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                return self.read(end + 1)
            if len(self.buffer) > LINE_CAP:
                raise NotAudited(f"a line argument longer than {LINE_CAP:,} bytes (LINE_CAP)")
            start = len(self.buffer)
            before = len(self.buffer)
            self._fill(before + CHUNK)
            if len(self.buffer) == before:
                raise NotAudited("the stream ends inside a line argument")

    def at_end(self) -> bool:
        self._fill(1)
        if self.buffer:
            return False
        if self.decompressor is not None:
            if not self.decompressor.eof:
                return False
            trailing = self.decompressor.unused_data or self.raw.read(1)
            if trailing:
                raise NotAudited(f"bytes follow the end of the {self.what} stream (a second stream nobody audited)")
        return True


#: Joblib's compressors by their magic bytes, in joblib's order of detection.
_COMPRESSED = (
    (b"\x78", "zlib", lambda: zlib.decompressobj(15)),
    (b"\x1f\x8b", "gzip", lambda: zlib.decompressobj(31)),
    (b"BZ", "bz2", bz2.BZ2Decompressor),
    (b"\x5d\x00", "lzma", lambda: lzma.LZMADecompressor(lzma.FORMAT_AUTO)),
    (b"\xfd\x37\x7a\x58\x5a", "xz", lambda: lzma.LZMADecompressor(lzma.FORMAT_AUTO)),
)
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


class _ZlibStream:
    """zlib's decompressobj with the interface of bz2/lzma decompressors (eof, needs_input, max_length)."""

    def __init__(self, inner):
        self.inner = inner
        self.pending = b""

    @property
    def eof(self):
        return self.inner.eof

    @property
    def needs_input(self):
        return not self.pending and not self.inner.unconsumed_tail

    @property
    def unused_data(self):
        return self.inner.unused_data

    def decompress(self, data: bytes, max_length: int) -> bytes:
        source = self.inner.unconsumed_tail + data
        return self.inner.decompress(source, max_length)


# --------------------------------------------------------------------------- the walk


_FIXED = {"uint1": "<B", "uint2": "<H", "int4": "<i", "uint4": "<I", "uint8": "<Q", "float8": ">d"}
_COUNTED = {  # length layout, kind of the value
    "string1": ("<B", "str-bytes"),
    "string4": ("<i", "str-bytes"),
    "bytes1": ("<B", "bytes"),
    "bytes4": ("<I", "bytes"),
    "bytes8": ("<Q", "bytes"),
    "bytearray8": ("<Q", "bytes"),
    "unicodestring1": ("<B", "str"),
    "unicodestring4": ("<I", "str"),
    "unicodestring8": ("<Q", "str"),
    "long1": ("<B", "long"),
    "long4": ("<i", "long"),
}
_LINES = {"decimalnl_short", "decimalnl_long", "floatnl", "stringnl", "stringnl_noescape", "unicodestringnl"}


def _judge_name(module: str, name: str) -> str | None:
    """Why a global's name is refused before any list is consulted (a malformed or dunder component)."""
    if not all(_IDENTIFIER.match(part) for part in module.split(".")) or not all(
        _IDENTIFIER.match(part) for part in name.split(".")
    ):
        return "not a plain dotted name"
    if any(_dunder(part) for part in module.split(".")) and module not in ("__main__", "__builtin__"):
        return "a dunder component in the module name"
    return None


class _Walk:
    """One pickle's opcodes, from the current position of ``source`` to its STOP."""

    def __init__(self, source: _Source, audit: Audit, joblib: bool, depth: int = 0):
        self.source = source
        self.audit = audit
        self.joblib = joblib
        self.depth = depth
        self.stack: list = []
        self.metastack: list = []
        self.memo: dict = {}
        self.frame_end: int | None = None
        self.wrappers = 0

    # -- the uses of globals
    def _global(self, module, name) -> Global:
        if not isinstance(module, str) or not isinstance(name, str):
            raise NotAudited("a global whose module or name is not a string the walk can read")
        self.audit.uses.setdefault((module, name), GlobalUse(module, name))
        return Global(module, name)

    def _use(self, value, how: str) -> None:
        if isinstance(value, Global):
            self.audit.uses[value.key].uses.add(how)

    def _passed(self, values) -> None:
        for value in values:
            if isinstance(value, Global):
                self._use(value, PASSED)

    # -- the stack
    def push(self, value) -> None:
        if len(self.stack) >= STACK_CAP:
            raise NotAudited(f"the pickle's stack grows beyond {STACK_CAP:,} items (STACK_CAP)")
        self.stack.append(value)

    def pop(self):
        if not self.stack:
            raise NotAudited("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list:
        if not self.metastack:
            raise NotAudited("no MARK to pop to")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def top(self):
        if not self.stack:
            raise NotAudited("stack underflow")
        return self.stack[-1]

    def memoize(self, index, value) -> None:
        if index not in self.memo and len(self.memo) >= MEMO_CAP:
            raise NotAudited(f"the pickle memoizes more than {MEMO_CAP:,} objects (MEMO_CAP)")
        self.memo[index] = value

    # -- reading arguments
    def _argument(self, arg):
        if arg is None:
            return None
        name = arg.name
        if name in _FIXED:
            layout = _FIXED[name]
            return struct.unpack(layout, self.source.exactly(struct.calcsize(layout), name))[0]
        if name in _COUNTED:
            layout, kind = _COUNTED[name]
            (length,) = struct.unpack(layout, self.source.exactly(struct.calcsize(layout), name))
            if length < 0:
                raise NotAudited(f"a negative length in {name}")
            if length > KEPT_STRING:
                self.source.skip(length, name)
                return Long(kind, length)
            data = self.source.exactly(length, name)
            if kind == "str":
                return data.decode("utf-8", "surrogatepass")
            if kind == "long":
                return pickletools.decode_long(data)
            if kind == "str-bytes":  # protocol 0-2 STRING: str in Python 3 with the default encoding
                return data.decode("ascii", "replace")
            return data
        if name in _LINES:
            line = self.source.readline()
            return arg.reader(io.BytesIO(line))
        if name == "stringnl_noescape_pair":
            first = self.source.readline()
            second = self.source.readline()
            return (first[:-1].decode("utf-8"), second[:-1].decode("utf-8"))
        raise NotAudited(f"an argument of kind {name} the walk does not read")

    # -- the walk
    def run(self):
        while True:
            code = self.source.read(1)
            if not code:
                raise NotAudited("the stream ends before the pickle's STOP")
            op = pickletools.code2op.get(code.decode("latin1"))
            if op is None:
                raise NotAudited(f"unknown opcode {code!r} at byte {self.source.position - 1}")
            argument = self._argument(op.arg)
            if op.name == "STOP":
                return self.pop()
            handler = getattr(self, "op_" + op.name, None)
            if handler is None:
                raise NotAudited(f"the opcode {op.name} is not modelled (it may call or load anything)")
            handler(argument)

    # constants
    def op_PROTO(self, arg):
        if not 0 <= arg <= 5:
            raise NotAudited(f"unknown pickle protocol {arg}")

    def op_FRAME(self, arg):
        self.frame_end = self.source.position + arg

    def _const(self, value):
        self.push(value)

    op_INT = op_BININT = op_BININT1 = op_BININT2 = op_LONG = op_LONG1 = op_LONG4 = _const
    op_FLOAT = op_BINFLOAT = op_STRING = op_BINSTRING = op_SHORT_BINSTRING = _const
    op_BINBYTES = op_SHORT_BINBYTES = op_BINBYTES8 = _const
    op_UNICODE = op_BINUNICODE = op_SHORT_BINUNICODE = op_BINUNICODE8 = _const

    def op_BYTEARRAY8(self, arg):
        self.push(OPAQUE)

    def op_NEXT_BUFFER(self, arg):
        raise NotAudited("out-of-band buffers (NEXT_BUFFER) come from outside the file")

    def op_READONLY_BUFFER(self, arg):
        self.top()

    def op_NONE(self, arg):
        self.push(None)

    def op_NEWTRUE(self, arg):
        self.push(True)

    def op_NEWFALSE(self, arg):
        self.push(False)

    # containers
    def op_MARK(self, arg):
        self.metastack.append(self.stack)
        self.stack = []

    def _tuple(self, items):
        self._passed(items)
        return tuple(items) if len(items) <= KEPT_ITEMS else OPAQUE

    def op_EMPTY_TUPLE(self, arg):
        self.push(())

    def op_TUPLE(self, arg):
        self.push(self._tuple(self.pop_mark()))

    def op_TUPLE1(self, arg):
        self.push(self._tuple([self.pop()]))

    def op_TUPLE2(self, arg):
        second, first = self.pop(), self.pop()
        self.push(self._tuple([first, second]))

    def op_TUPLE3(self, arg):
        third, second, first = self.pop(), self.pop(), self.pop()
        self.push(self._tuple([first, second, third]))

    def op_EMPTY_LIST(self, arg):
        self.push(_List())

    def op_LIST(self, arg):
        items = self.pop_mark()
        self._passed(items)
        made = _List()
        made.pairs = any(_names_an_attribute(item) for item in items)
        self.push(made)

    def _append_to(self, target, items):
        self._passed(items)
        if isinstance(target, _List) and any(_names_an_attribute(item) for item in items):
            target.pairs = True
        if isinstance(target, Global):
            raise NotAudited(f"APPEND onto the global {target.module}.{target.name} itself")
        if isinstance(target, (tuple, str, bytes, int, float, Long)) or target is None:
            raise NotAudited("APPEND onto a value that has no append")
        self._items_added(target)

    def _items_added(self, target) -> None:
        """APPENDS calls an object's extend/append, SETITEMS its __setitem__ (pandas calls a callable
        key, ...): onto an object the pickle made they are judged as a use of its class."""
        if isinstance(target, Made):
            self._use(target.klass or target.origin, ITEMS)

    def op_APPEND(self, arg):
        value = self.pop()
        self._append_to(self.top(), [value])

    def op_APPENDS(self, arg):
        items = self.pop_mark()
        self._append_to(self.top(), items)

    def op_EMPTY_DICT(self, arg):
        self.push(_Dict())

    def _set_items(self, target, pairs):
        flat = [value for pair in pairs for value in pair]
        self._passed(flat)
        if isinstance(target, dict):
            for key, value in pairs:
                # Every key is looked at, kept or not: a dict may become a BUILD state (its keys
                # instance attributes), and a dunder one (__setstate__) is then called by the next BUILD.
                if isinstance(key, str) and _dunder(key):
                    target.dunder = True
                    if target.build_state:
                        raise NotAudited("a dunder key added to a dict that is already an object's BUILD state")
                elif not isinstance(key, (str, int, float, bytes, tuple, Long)) or isinstance(key, bool):
                    target.unknown_keys = True  # a key made by a call, read from the memo, ...: it may be any name
                    if target.build_state:
                        raise NotAudited("an unreadable key added to a dict that is already an object's BUILD state")
                try:
                    kept = key in target  # a later value of a kept key replaces it, as in the unpickler
                except TypeError:
                    kept = False
                if len(target) >= KEPT_ITEMS and not kept:
                    target.truncated = True
                    continue
                if isinstance(key, (str, int, bytes, tuple)) and not isinstance(key, bool):
                    try:
                        target[key] = value
                    except TypeError:  # a tuple holding an unhashable symbol
                        target.unknown_keys = True
            return
        if isinstance(target, Global):
            raise NotAudited(f"SETITEM onto the global {target.module}.{target.name} itself")
        if isinstance(target, (tuple, list, str, bytes, int, float, Long)) or target is None:
            raise NotAudited("SETITEM onto a value that has no item assignment")
        self._items_added(target)

    def op_DICT(self, arg):
        items = self.pop_mark()
        if len(items) % 2:
            raise NotAudited("DICT with an odd number of items")
        target = _Dict()
        self._set_items(target, list(zip(items[::2], items[1::2], strict=True)))
        self.push(target)

    def op_SETITEM(self, arg):
        value, key = self.pop(), self.pop()
        self._set_items(self.top(), [(key, value)])

    def op_SETITEMS(self, arg):
        items = self.pop_mark()
        if len(items) % 2:
            raise NotAudited("SETITEMS with an odd number of items")
        self._set_items(self.top(), list(zip(items[::2], items[1::2], strict=True)))

    def op_EMPTY_SET(self, arg):
        self.push(OPAQUE)

    def op_ADDITEMS(self, arg):
        self._passed(self.pop_mark())
        target = self.top()
        if target is not OPAQUE:
            raise NotAudited("ADDITEMS onto something that is not a set")

    def op_FROZENSET(self, arg):
        self._passed(self.pop_mark())
        self.push(OPAQUE)

    # stack and memo
    def op_POP(self, arg):
        self._passed([self.pop()])

    def op_DUP(self, arg):
        self.push(self.top())

    def op_POP_MARK(self, arg):
        self._passed(self.pop_mark())

    def _get(self, index):
        if index not in self.memo:
            raise NotAudited(f"memo entry {index} read before it was written")
        self.push(self.memo[index])

    op_GET = op_BINGET = op_LONG_BINGET = _get

    def _put(self, index):
        self.memoize(index, self.top())

    op_PUT = op_BINPUT = op_LONG_BINPUT = _put

    def op_MEMOIZE(self, arg):
        self.memoize(len(self.memo), self.top())

    # globals and calls
    def op_GLOBAL(self, arg):
        module, name = arg
        self.push(self._global(module, name))

    def op_STACK_GLOBAL(self, arg):
        name, module = self.pop(), self.pop()
        if not isinstance(module, str) or not isinstance(name, str):
            raise NotAudited("STACK_GLOBAL with operands that are not strings the walk kept")
        self.push(self._global(module, name))

    def op_EXT1(self, arg):
        raise NotAudited("an extension-registry global (EXT1) names its global outside the file")

    op_EXT2 = op_EXT4 = op_EXT1

    def op_PERSID(self, arg):
        raise NotAudited("a persistent id (PERSID/BINPERSID) is resolved outside the pickle")

    op_BINPERSID = op_PERSID

    def op_REDUCE(self, arg):
        args, callable_ = self.pop(), self.pop()
        if not isinstance(callable_, Global):
            raise NotAudited("REDUCE on a callable that is not a global (what it calls cannot be told)")
        self._use(callable_, CALLED)
        self.push(self._call(callable_, args))

    def _call(self, callable_: Global, args) -> Made:
        if isinstance(args, tuple):
            self._passed(args)
        made = Made(callable_, args=args if isinstance(args, tuple) else ())
        rules = _rules("callable", callable_.module, callable_.name)
        how = rules[0].args if rules else "any"
        if how in ("class-first", "class-and-base"):
            classes = 2 if how == "class-and-base" else 1
            if not isinstance(args, tuple) or len(args) < classes or not all(isinstance(a, Global) for a in args[:classes]):
                raise NotAudited(
                    f"{callable_.module}.{callable_.name} called with a class that is not a global (what it makes cannot be told)"
                )
            self._use(args[0], INSTANTIATED)
            made.klass = args[0]
            if classes == 2 and args[1].key != ("builtins", "object"):
                # copyreg._reconstructor runs base.__new__(cls, state) and base.__init__(obj, state):
                # a base other than object is called with the pickle's argument
                self._use(args[1], CALLED)
        self.audit.calls.append((callable_, args))
        return made

    def op_NEWOBJ(self, arg):
        args, cls = self.pop(), self.pop()
        self._new(cls, args, "NEWOBJ")

    def op_NEWOBJ_EX(self, arg):
        _kwargs, args, cls = self.pop(), self.pop(), self.pop()
        self._new(cls, args, "NEWOBJ_EX")

    @staticmethod
    def _state_names_no_attribute(state) -> None:
        """A BUILD state besides a dict literal: __setstate__ methods (and dict.update) take any mapping
        or pairs, so a mapping made by a call, a list, a set, or a tuple holding a dunder name or a
        pair with an unreadable name could set a dunder attribute (numpy's own types excepted)."""
        if isinstance(state, (Made, Opaque, _List, Global)):
            raise NotAudited(
                "BUILD with a state the walk cannot read the names of (a mapping made by a call, a list or a set "
                "of pairs may set a dunder attribute)"
            )
        if isinstance(state, tuple):
            for item in state:
                if _names_an_attribute(item):
                    raise NotAudited("BUILD with a tuple state holding a dunder name or a pair with an unreadable name")
                if isinstance(item, _Dict) and (item.dunder or item.unknown_keys):
                    raise NotAudited("BUILD with a tuple state holding a dict with a dunder or unreadable key")

    def _new(self, cls, args, opcode):
        if not isinstance(cls, Global):
            raise NotAudited(f"{opcode} on a class that is not a global")
        self._use(cls, INSTANTIATED)
        self.push(Made(cls, klass=cls, args=args if isinstance(args, tuple) else ()))

    def op_INST(self, arg):
        # INST and OBJ call the class (cls(*args)) as REDUCE does: the same argument rules, and what
        # they return is known only when the callable is a class.
        module, name = arg
        items = self.pop_mark()
        cls = self._global(module, name)
        self._use(cls, CALLED_INST)
        self.push(self._call(cls, tuple(items)))

    def op_OBJ(self, arg):
        items = self.pop_mark()
        if not items or not isinstance(items[0], Global):
            raise NotAudited("OBJ on a class that is not a global")
        self._use(items[0], CALLED_INST)
        self.push(self._call(items[0], tuple(items[1:])))

    def op_BUILD(self, arg):
        state = self.pop()
        target = self.top()
        if not isinstance(target, Made):
            raise NotAudited("BUILD on something the pickle did not make (a class, a value)")
        self._passed([state])
        slots = None
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state, slots = state
        for part in (state, slots):
            if isinstance(part, _Dict):
                if part.dunder:
                    raise NotAudited("BUILD sets a dunder attribute")
                if part.unknown_keys:
                    raise NotAudited("BUILD with a state dict whose keys the walk cannot read (any may be a dunder attribute)")
                part.build_state = True
            elif isinstance(part, dict):
                raise NotAudited("BUILD with a state dict the walk did not read")
            elif not _numpy_own(target) and part is not None:
                self._state_names_no_attribute(part)
        # joblib asks every BUILD's object whether it is a NumpyArrayWrapper (isinstance), then reads
        # array bytes from the stream: BUILD on what a callable returned is judged as a use of that
        # callable, and passes only for a class or a callable that returns its own package's types.
        if target.klass is not None:
            self._use(target.klass, BUILT)
        else:
            self._use(target.origin, BUILT)
        if target.origin.key == ("numpy", "dtype"):
            target.dtype_state = state if isinstance(state, tuple) else None
        elif target.klass is not None and target.klass.key == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            if slots is not None or not isinstance(state, dict):
                raise NotAudited("a NumpyArrayWrapper whose state is not a plain dict")
            if getattr(state, "truncated", False):
                raise NotAudited(f"a NumpyArrayWrapper whose state has more than {KEPT_ITEMS} keys (KEPT_ITEMS)")
            target.state.update(state)
            if self.joblib:
                self._read_array(target)

    # joblib's raw array data
    def _read_array(self, wrapper: Made) -> None:
        if self.frame_end is not None and self.source.position < self.frame_end:
            raise NotAudited("a FRAME reaches over a NumpyArrayWrapper's array data")
        state = wrapper.state
        shape, dtype = state.get("shape"), state.get("dtype")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise NotAudited("a NumpyArrayWrapper whose shape is not a tuple of sizes")
        if not isinstance(dtype, Made) or dtype.origin.key != ("numpy", "dtype"):
            raise NotAudited("a NumpyArrayWrapper whose dtype is not a numpy.dtype")
        subclass = state.get("subclass")
        if not isinstance(subclass, Global):
            raise NotAudited("a NumpyArrayWrapper whose subclass is not a global")
        self._use(subclass, INSTANTIATED)  # joblib makes an empty array of it (numpy's _reconstruct)
        itemsize, has_object = _dtype_layout(dtype)
        count = 1
        for n in shape:
            count *= n
        self.wrappers += 1
        self.stack[-1] = OPAQUE  # joblib replaces the wrapper by the array
        if has_object:  # a nested pickle (plain pickle.load: no joblib wrappers read there)
            if self.depth >= 1:
                raise NotAudited("an object array nested in an object array's pickle")
            _Walk(self.source, self.audit, joblib=False, depth=self.depth + 1).run()
            return
        if "numpy_array_alignment_bytes" in state and state["numpy_array_alignment_bytes"] is not None:
            padding = self.source.exactly(1, "the alignment padding")[0]
            self.source.skip(padding, "the alignment padding")
        self.source.skip(count * itemsize, f"the data of a {shape} array")


_FIXED_ITEMSIZE = re.compile(r"([biufcmM])(\d+)\Z")
_FLEXIBLE = re.compile(r"[USVa]\d*\Z")


def _dtype_layout(dtype: Made) -> tuple[int, bool]:
    """(itemsize, holds Python objects) of a pickled numpy.dtype: from its arguments and BUILD state."""
    args, state = dtype.args, dtype.dtype_state
    if not args or not isinstance(args[0], str):
        raise NotAudited("a numpy.dtype made from something other than a type code")
    code = args[0]
    if state is None or len(state) < 8 or not isinstance(state[5], int) or not isinstance(state[7], int):
        raise NotAudited(f"a numpy.dtype {code!r} without the state numpy writes")
    elsize, flags = state[5], state[7]
    from_flags = bool(flags & 1)
    from_fields = code.startswith("O") or _fields_hold_objects(state)
    if from_flags != from_fields:
        raise NotAudited(f"a numpy.dtype {code!r} whose flags and fields disagree about holding objects")
    if code.startswith("O"):
        return 8, True
    match = _FIXED_ITEMSIZE.match(code)
    if match:
        # numpy keeps a fixed-size type's own size whatever elsize the state claims (f4 with
        # elsize 8 is 4 bytes): anything but -1/0 or that size is refused, not believed.
        size = int(match[2])
        if elsize not in (-1, 0, size):
            raise NotAudited(f"a numpy.dtype {code!r} whose state claims {elsize}-byte items")
        if state[2] is not None or state[4] is not None:
            raise NotAudited(f"a numpy.dtype {code!r} with a subarray or fields in its state")
        return size, False
    if _FLEXIBLE.match(code) and elsize > 0:  # only flexible types take their size from the state
        return elsize, from_flags
    raise NotAudited(f"a numpy.dtype {code!r} whose size the walk cannot tell")


def _fields_hold_objects(state: tuple) -> bool:
    subarray, fields = state[2], state[4]
    parts = []
    if isinstance(subarray, tuple) and subarray:
        parts.append(subarray[0])
    if isinstance(fields, dict):
        parts.extend(value[0] for value in fields.values() if isinstance(value, tuple) and value)
    elif fields is not None:
        raise NotAudited("a structured numpy.dtype whose fields the walk did not keep")
    for part in parts:
        if not isinstance(part, Made) or part.origin.key != ("numpy", "dtype"):
            raise NotAudited("a structured numpy.dtype with a field that is not a numpy.dtype")
        if _dtype_layout(part)[1]:
            return True
    return False


# --------------------------------------------------------------------------- judging the globals


def _allowed(kind: str, module: str, name: str) -> list[Rule]:
    """Every allowlist entry of ``kind`` for this global (a dotted or private name only by exact
    entry). All of them, not the first: a broad entry (scikit-learn's classes) listed before a
    narrow one (its Bunch, a container) hid what the narrow one grants."""
    if "." in name or any(part.startswith("_") for part in name.split(".")):
        return _exact(kind, module, name)
    return _rules(kind, module, name)


def _why_refused(use: GlobalUse, folder: FolderCode, audit: Audit) -> str | None:
    module, name = use.module, use.name
    uses = use.uses or {PASSED}
    bad = _judge_name(module, name)
    if bad:
        return bad
    if module == "__main__":
        if "." in name or name.startswith("_") or not uses <= {INSTANTIATED, BUILT, PASSED}:
            return "a __main__ global used as more than a class (a server's __main__ is its own entry point)"
        audit.from_main.append(name)
        return None
    if folder.shadows(module):
        top = module.split(".")[0]
        return (
            f"the server folder holds a module {top} named like a module of Python or of the image: "
            f"the unpickler takes Python's own {top}, not the folder's, so the folder's source does not vouch for it"
        )
    if folder.owns(module):
        why = folder.judge(module, name, uses)
        if why is None:
            audit.folder_globals.append((module, name))
        return why
    top = name.split(".")[0]
    for rule in allowlist():
        if rule.kind == "excluded" and (rule.matches(module, name) or rule.matches(module, top)):
            return f"excluded from the allowlist: {rule.reason}"
    for how in sorted(uses):
        if how in (CALLED, CALLED_INST):
            rules = _allowed("callable", module, name)
            # every entry's argument rule holds: a narrow entry's rule is never lost to a broad one's "any"
            for rule in rules:
                if refused := _arguments_refused(rule, use, audit):
                    return refused
        elif how == ITEMS:
            rules = [rule for rule in _allowed("class", module, name) if rule.items]
            if not rules:
                return "items added to it by APPENDS/SETITEMS (its extend/append/__setitem__ would run), and it is not a container class of the allowlist"
        elif how == BUILT:
            rules = _allowed("class", module, name)
            if not rules and (callable_rules := _allowed("callable", module, name)):
                if not any(rule.build for rule in callable_rules):
                    return (
                        "BUILD on what it returns, an object the audit cannot tie to a class (joblib reads "
                        "array data after the BUILD of anything that is a NumpyArrayWrapper)"
                    )
                rules = callable_rules
        elif how == INSTANTIATED:
            rules = _allowed("class", module, name)
        else:
            rules = _allowed("class", module, name) or _allowed("passable", module, name)
        if not rules:
            danger = danger_of(module, name)
            return "not on the allowlist" + (f" ({module}.{name}: {danger})" if danger else "")
    return None


def _arguments_refused(rule: Rule, use: GlobalUse, audit: Audit) -> str | None:
    """The argument rules of reviewed callables that would otherwise do what they are told."""
    if rule.args == "any" or rule.args.startswith("class"):
        return None
    for callable_, args in audit.calls:
        if callable_.key != (use.module, use.name):
            continue
        if rule.args == "numpy-ufunc":
            ok = (
                isinstance(args, tuple)
                and len(args) == 2
                and args[0] == "numpy"
                and isinstance(args[1], str)
                and bool(_allowed("passable", "numpy", args[1]))
            )
            if not ok:
                return "called with arguments that do not name a numpy ufunc (it imports what it is told)"
        elif rule.args == "text-codec":
            ok = (
                isinstance(args, tuple)
                and len(args) == 2
                and isinstance(args[1], str)
                and args[1].lower() in ("latin1", "latin-1", "ascii", "utf-8", "utf8")
            )
            if not ok:
                return "called with an encoding other than latin1/ascii/utf-8 (a codec is looked up, and imported, by name)"
        elif rule.args == "numpy-scalar":
            if not _plain_scalar_dtype(args):
                return "called with a dtype that holds Python objects, or one the walk cannot read (numpy then returns its second argument itself)"
        else:
            return f"an allowlist rule {rule.args!r} the audit does not know"
    return None


def _numpy_own(target: Made) -> bool:
    """An object of numpy's own types: their __setstate__ (C) set no attributes from the state."""
    owner = target.klass or target.origin
    return owner.module == "numpy" or owner.module.startswith("numpy.")


def _plain_scalar_dtype(args) -> bool:
    """numpy's scalar(dtype, data): a dtype the walk reads, without Python objects."""
    if not isinstance(args, tuple) or len(args) != 2:
        return False
    dtype = args[0]
    if not isinstance(dtype, Made) or dtype.origin.key != ("numpy", "dtype"):
        return False
    try:
        return not _dtype_layout(dtype)[1]
    except NotAudited:
        return False


def _judge(audit: Audit, code_dir) -> None:
    folder = FolderCode(code_dir)
    for use in audit.uses.values():
        why = _why_refused(use, folder, audit)
        if why is None:
            continue
        missing = _module_missing(use.module, folder)
        if missing is not None:
            audit.unresolvable.append((use, missing))
        else:
            audit.refused.append((use, why))


def _module_missing(module: str, folder: FolderCode) -> str | None:
    """Why ``module`` cannot be imported where the model loads, when that is certain from the files:
    the folder has its package but not the module's file, or no file of the folder, of Python or of
    the image's packages has its top-level name. Only judged with the server folder at hand."""
    if folder.code_dir is None or module == "__main__":
        return None
    top = module.split(".")[0]
    if folder.owns(module):
        if folder._source(module) is None:
            return f"the server folder has {top}/ but no module {module} (no {module.replace('.', '/')}.py)"
        return None
    if top not in python_and_image_modules() and not folder.has(top):
        return f"no module {top} in the server folder, in Python or in the image's packages"
    return None


# --------------------------------------------------------------------------- files


def _source_for(raw, path: Path, joblib: bool) -> _Source:
    """The stream joblib.load reads: the file, or its decompression (by magic, as joblib detects it)."""
    if not joblib:
        return _Source(raw)
    head = raw.read(8)
    raw.seek(0)
    if head.startswith(b"ZF"):
        raise NotAudited("joblib's pre-0.10 'ZF' compressed format (joblib has not written it since 0.10, 2016)")
    for magic, name, make in _COMPRESSED:
        if head.startswith(magic):
            decompressor = make()
            if name in ("zlib", "gzip"):
                decompressor = _ZlibStream(decompressor)
            return _Source(raw, decompressor, f"{name}-compressed")
    if head.startswith(_LZ4_MAGIC):
        try:  # Late: lz4 is optional (joblib's own optional compressor)
            import lz4.frame
        except ImportError:
            raise NotAudited("an lz4-compressed joblib, and lz4 is not installed here to read it") from None
        return _Source(raw, lz4.frame.LZ4FrameDecompressor(), "lz4-compressed")
    return _Source(raw)


def _walk_file(path: Path, audit: Audit, joblib: bool, offset: int = 0, lenient: bool = False) -> _Walk | None:
    """Walk the pickle of ``path`` (from ``offset``) into ``audit``; the walk, or None when it failed
    (the reason in ``audit.error`` unless ``lenient``)."""
    try:
        with open_plain(path) as raw:
            source = _source_for(raw, path, joblib) if offset == 0 else _Source(raw)
            if offset:
                raw.seek(offset)
            walk = _Walk(source, audit, joblib=joblib)
            walk.run()
            walk.compressed = source.decompressor is not None
            if not source.at_end():
                raise NotAudited(f"bytes follow the pickle's STOP at byte {source.position} (a second pickle nobody audited)")
            return walk
    except NotAudited as error:
        if not lenient:
            audit.error = str(error)
    except (NotPlain, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError, UnicodeDecodeError, RecursionError) as error:
        if not lenient:
            audit.error = f"{type(error).__name__}: {error}"
    return None


def _legacy_wrappers(audit: Audit) -> None:
    for key, use in audit.uses.items():
        if key[0] == "joblib.numpy_pickle_compat":
            audit.refused.append((use, LEGACY_WRAPPER_WHY))


def _pickle_load_view(path: Path, audit: Audit, offset: int = 0) -> None:
    """What ``pickle.load`` of the same bytes sees: it reads array data as opcodes. The globals it
    meets before it stops are judged too (a handler may load the file with plain pickle)."""
    view = Audit(path=path)
    _walk_file(path, view, joblib=False, offset=offset, lenient=True)
    for key, use in view.uses.items():
        mine = audit.uses.setdefault(key, GlobalUse(use.module, use.name))
        mine.uses |= use.uses
    audit.calls.extend(view.calls)


def _audit_pickle(path: Path, code_dir, joblib: bool = True, offset: int = 0) -> Audit:
    audit = Audit(path=Path(path))
    walk = _walk_file(audit.path, audit, joblib=joblib, offset=offset)
    if joblib and (walk is None or (walk.wrappers and not walk.compressed)):
        _pickle_load_view(audit.path, audit, offset)
    _judge(audit, code_dir)
    _legacy_wrappers(audit)
    return audit


def audit_model_file(path, code_dir=None) -> Audit:
    """The audit of a model file, whatever its format.

    A file positively recognised as ONNX, XGBoost, LightGBM or numeric .npy/.npz has no pickle to
    audit (``Audit.format``), unless it is also a pickle: walked from its first byte, as joblib and
    as plain pickle read it, a file that reaches a STOP or names a global is a polyglot and refused.
    """
    path = Path(path)
    try:
        found = recognise(path)
    except TooLargeToRecognise as error:  # streamed as a pickle; if it is none, say both
        audit = _audit_pickle(path, code_dir)
        if audit.error:
            audit.error = f"{error}; as a pickle: {audit.error}"
        return audit
    except NotPlain as error:
        return Audit(path=path, error=str(error))
    except OSError as error:
        return Audit(path=path, error=f"it cannot be read ({type(error).__name__}: {error})")
    if found is None:
        if _starts_with(path, b"\x93NUMPY"):  # an .npy of Python objects: its data is a pickle
            return audit_any(path.with_name(path.name), code_dir, npy=True)
        return _audit_pickle(path, code_dir)
    audit = Audit(path=path, format=found)
    for joblib in (True, False):
        probe = Audit(path=path)
        walk = _walk_file(path, probe, joblib=joblib, lenient=True)
        if walk is not None or probe.uses:
            named = f" naming {', '.join(use.dotted for use in probe.uses.values())}" if probe.uses else ""
            audit.polyglot = (
                f"is recognised as {found.name} and is also a pickle{named} (a polyglot: "
                f"{'joblib.load' if joblib else 'pickle.load'} would run it)"
            )
            audit.uses = probe.uses
            break
    return audit


def audit_joblib(path, code_dir=None) -> Audit:
    """A joblib or plain pickle file (kept for callers of the former name)."""
    return _audit_pickle(Path(path), code_dir)


#: Files a handler may unpickle besides its model file: by name, or by a pickle's first bytes.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".jbl", ".sav", ".pt", ".pth", ".dill", ".cloudpickle")


def looks_like_pickle(path: Path) -> bool:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with open_plain(path) as stream:
            head = stream.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5  # PROTO opcode, protocols 2-5


def folder_pickles(folder: Path, model_file: Path) -> list[Path]:
    """Every other plain file of the server folder that a handler could unpickle (sorted)."""
    found = []
    for path in walk_plain(folder).files:
        if "__pycache__" in path.parts or path == model_file or path.suffix == ".py":
            continue
        if path.suffix == ".npz":
            try:
                numeric = recognise(path) is not None
            except NotPlain:  # too large to recognise: the audit says so
                numeric = False
            if not numeric:  # members holding Python objects (or not an npz at all)
                found.append(path)
            continue
        if path.suffix == ".npy":
            if npy_holds_objects(path):
                found.append(path)
            continue
        if looks_like_pickle(path):
            found.append(path)
    return found


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open_plain(path) as stream:
            return stream.read(len(magic)) == magic
    except OSError:
        return False


def audit_any(path, code_dir=None, npy: bool = False) -> Audit:
    """Another file of the server folder: an object .npy's embedded pickle, or a joblib/pickle file."""
    path = Path(path)
    if npy or path.suffix == ".npy":
        try:
            offset = npy_data_offset(path)
        except (OSError, ValueError, SyntaxError, struct.error) as error:
            return Audit(path=path, error=f"its .npy header does not read ({type(error).__name__})")
        return _audit_pickle(path, code_dir, joblib=False, offset=offset)
    if path.suffix == ".npz":
        return Audit(path=path, error="an .npz whose members hold Python objects (pickles inside a zip) is not walked")
    return _audit_pickle(path, code_dir)
