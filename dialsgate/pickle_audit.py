"""List every global a joblib file references, without running anything the file asks for.

picklescan and fickling parse the pickle opcode stream; a joblib file interleaves that stream
with raw array bytes (each NumpyArrayWrapper is followed by its data), so both stop at the first
array (picklescan reports a scan error and misses what follows) and see nothing in a compressed
file. Here joblib's own unpickler reads the file. The only globals it really resolves are the
array plumbing it needs to keep reading (``WALK_PLUMBING``: joblib's array wrappers and numpy's
array/dtype constructors); every other global is recorded and replaced by an inert stub, so the
whole file is walked and nothing it names is ever called: not the folder's classes, not
scikit-learn's, not ``os.system``.

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
    globals: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None

    def dangerous(self) -> list[tuple[str, str, Danger]]:
        return [(module, name, danger) for module, name in self.globals if (danger := danger_of(module, name))]

    def to_resolve(self) -> list[tuple[str, str]]:
        """Globals that must resolve in the serving environment (plumbing and dangers excluded)."""
        return [(m, n) for m, n in self.globals if not _matches(WALK_PLUMBING, m, n) and danger_of(m, n) is None]


def audit_joblib(path) -> Audit:
    """Walk ``path`` with joblib's unpickler; only WALK_PLUMBING is ever resolved."""
    from joblib import numpy_pickle

    audit = Audit()
    original = numpy_pickle.NumpyUnpickler.find_class

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
    ):
        try:
            numpy_pickle.load(path)
        except Exception as error:  # a stub may break the object graph late in the file
            audit.error = f"{type(error).__name__}: {error}"
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
