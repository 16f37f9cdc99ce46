"""List every global a joblib file references, without running anything the file asks for.

picklescan and fickling parse the pickle opcode stream; a joblib file interleaves that stream
with raw array bytes (each NumpyArrayWrapper is followed by its data), so both stop at the first
array (picklescan reports a scan error and misses what follows) and see nothing in a compressed
file. Here joblib's own unpickler reads the file. The only globals it really resolves are the
array plumbing it needs to keep reading (``WALK_PLUMBING``: joblib's array wrappers and numpy's
array/dtype constructors); every other global is recorded and replaced by an inert stub, so the
whole file is walked and nothing it names is ever called: not the folder's classes, not
scikit-learn's, not ``os.system``.

The audit fails closed: a walk that stops early (a stub that breaks the object graph, bytes
after the pickle's end, a file joblib cannot read) leaves globals unseen, so such a file counts
as unaudited and is never loaded by anything. Only a file positively recognised as another
format (``model_formats``: ONNX, XGBoost JSON/UBJ, LightGBM text, numeric .npy/.npz) is not
walked at all.

What the recorded globals mean is judged elsewhere: ``DANGEROUS_GLOBALS`` (data in
``pickle-danger.toml``) names code-execution and I/O primitives, which fail the audit; every
other global must resolve from the server folder or the image's packages (checked in the
serving environment, ``checks.pickles``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import pickle
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from joblib import numpy_pickle

from dialsgate.modelfile.formats import npy_data_offset, npy_holds_objects, recognise

DANGER_FILE = Path(__file__).resolve().parent / "pickle-danger.toml"

#: Globals the walk resolves for real: without them joblib cannot read the array bytes that
#: follow each wrapper. All are constructors of plain data (arrays, dtypes, containers).
WALK_PLUMBING = (
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"), ("builtins", "complex"),
    ("builtins", "bytearray"), ("builtins", "bytes"), ("builtins", "range"), ("_codecs", "encode"),
    ("collections", "OrderedDict"), ("copyreg", "_reconstructor"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.dtypes", "*DType"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"), ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
)  # fmt: skip


def _matches(patterns, module: str, name: str) -> bool:
    return any(fnmatch.fnmatchcase(module, m) and fnmatch.fnmatchcase(name, n) for m, n in patterns)


@dataclass(frozen=True)
class Danger:
    module: str
    name: str
    why: str


@cache
def dangerous_globals() -> tuple[Danger, ...]:
    """The danger list (pickle-danger.toml): (module pattern, name pattern, why)."""
    with open(DANGER_FILE, "rb") as stream:
        data = tomllib.load(stream)
    return tuple(Danger(entry["module"], entry.get("name", "*"), entry["why"]) for entry in data["danger"])


def danger_of(module: str, name: str) -> Danger | None:
    for danger in dangerous_globals():
        if fnmatch.fnmatchcase(module, danger.module) and fnmatch.fnmatchcase(name, danger.name):
            return danger
    return None


class _Inert:
    """Stands in for every global the walk does not resolve: takes any arguments, does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


@dataclass
class Audit:
    path: Path | None = None
    globals: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None  # the walk did not reach the end of the file: fails closed

    @property
    def complete(self) -> bool:
        return self.error is None

    @property
    def safe_to_load(self) -> bool:
        """Fully walked and naming no dangerous global: the only files anything may load."""
        return self.complete and not self.dangerous()

    def refusal(self) -> str | None:
        """Why nothing may load the file (None when it is safe to load)."""
        name = self.path.name if self.path else "the model file"
        dangerous = self.dangerous()
        if dangerous:
            return f"{name} references dangerous globals ({', '.join(f'{m}.{n}' for m, n, _ in dangerous)})"
        if self.error:
            return f"{name} could not be fully audited ({self.error})"
        return None

    def dangerous(self) -> list[tuple[str, str, Danger]]:
        return [(module, name, danger) for module, name in self.globals if (danger := danger_of(module, name))]

    def to_resolve(self) -> list[tuple[str, str]]:
        """Globals that must resolve in the serving environment (plumbing and dangers excluded)."""
        return [(m, n) for m, n in self.globals if not _matches(WALK_PLUMBING, m, n) and danger_of(m, n) is None]


def audit_joblib(path) -> Audit:
    """Walk ``path`` with joblib's unpickler; only WALK_PLUMBING is ever resolved.

    Complete only when joblib read the whole pickle without error and nothing follows its end
    (a second pickle appended to the file would never be seen, yet ``pickle.load`` twice reads it).
    """

    audit = Audit(path=Path(path))
    original = numpy_pickle.NumpyUnpickler.find_class
    original_unpickle = numpy_pickle._unpickle

    def unpickle_to_the_end(fobj, *args, **kwargs):
        obj = original_unpickle(fobj, *args, **kwargs)
        if fobj.read(1):
            raise ValueError("bytes follow the end of the pickle (a second object nobody audited)")
        return obj

    def record_and_stub(unpickler, module, name):
        if (module, name) not in audit.globals:
            audit.globals.append((module, name))
        if _matches(WALK_PLUMBING, module, name):
            return original(unpickler, module, name)
        return _Inert

    class _ObjectArrayUnpickler(pickle._Unpickler):
        # joblib reads object-dtype arrays with a nested plain pickle.load: same rules there.
        def find_class(self, module, name):
            return record_and_stub(self, module, name)

    class _PickleForJoblib:
        def __getattr__(self, attribute):
            return getattr(pickle, attribute)

        @staticmethod
        def load(file, **kwargs):
            return _ObjectArrayUnpickler(file).load()

    with (
        _patched(numpy_pickle.NumpyUnpickler, "find_class", record_and_stub),
        _patched(numpy_pickle, "pickle", _PickleForJoblib()),
        _patched(numpy_pickle, "_unpickle", unpickle_to_the_end),
    ):
        try:
            numpy_pickle.load(path)
        except Exception as error:  # the walk stopped early: what follows was never seen
            audit.error = f"the walk stopped at {type(error).__name__}: {error}"
    return audit


def audit_embedded_pickle(path, offset: int) -> Audit:
    """Walk the plain pickle that starts at ``offset`` of ``path`` (an object .npy), stubs only."""
    audit = Audit(path=Path(path))

    class _StubUnpickler(pickle._Unpickler):
        def find_class(self, module, name):
            if (module, name) not in audit.globals:
                audit.globals.append((module, name))
            if _matches(WALK_PLUMBING, module, name):
                return super().find_class(module, name)
            return _Inert

    with open(path, "rb") as stream:
        stream.seek(offset)
        try:
            _StubUnpickler(stream).load()
            if stream.read(1):
                raise ValueError("bytes follow the end of the pickle")
        except Exception as error:
            audit.error = f"the walk stopped at {type(error).__name__}: {error}"
    return audit


@contextlib.contextmanager
def _patched(owner, attribute, replacement):
    original = vars(owner).get(attribute)
    setattr(owner, attribute, replacement)
    try:
        yield
    finally:
        if original is None:
            delattr(owner, attribute)
        else:
            setattr(owner, attribute, original)


# --------------------------------------------------------------------------- other files


def audit_model_file(path) -> Audit | None:
    """The audit of a model file, or None when it is positively another format (nothing to audit)."""

    if recognise(path) is not None:
        return None
    return audit_joblib(path)


#: Files a handler may unpickle besides its model file: by name, or by a pickle's first bytes.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".jbl", ".sav", ".pt", ".pth", ".dill", ".cloudpickle")


def looks_like_pickle(path: Path) -> bool:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as stream:
            head = stream.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5  # PROTO opcode, protocols 2-5


def folder_pickles(folder: Path, model_file: Path) -> list[Path]:
    """Every other file of the server folder that a handler could unpickle (sorted)."""

    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.resolve() == model_file.resolve():
            continue
        if path.suffix == ".py":
            continue
        if path.suffix == ".npz":
            if recognise(path) is None:  # members holding Python objects (or not an npz at all)
                found.append(path)
            continue
        if path.suffix == ".npy":
            if npy_holds_objects(path):
                found.append(path)
            continue
        if looks_like_pickle(path):
            found.append(path)
    return found


def audit_any(path: Path) -> Audit:
    """A folder file: an object .npy's embedded pickle, or a joblib/pickle file."""

    if path.suffix == ".npy":
        return audit_embedded_pickle(path, npy_data_offset(path))
    if path.suffix == ".npz":
        return Audit(path=path, error="an .npz whose members hold Python objects (pickles inside a zip) is not walked")
    return audit_joblib(path)
