"""List every global a joblib file references, without running anything that is not allowed.

picklescan and fickling parse the pickle opcode stream; a joblib file interleaves that stream
with raw array bytes (each NumpyArrayWrapper is followed by its data), so both stop at the first
array (picklescan reports a scan error and misses what follows) and see nothing in a compressed
file. Here joblib's own unpickler reads the file, and every global it asks for goes through an
allowlist first: allowed globals are resolved normally, any other one is recorded and replaced
by an inert stub, so the whole file is walked and nothing unlisted is ever called.
"""

from __future__ import annotations

import contextlib
import fnmatch
import pickle
from dataclasses import dataclass, field

#: (module pattern, name pattern) pairs of globals a model file may reference besides the
#: server folder's own classes and functions: plain containers and numpy/scipy array plumbing.
ALLOWED_GLOBALS = (
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"), ("builtins", "complex"),
    ("builtins", "bytearray"), ("builtins", "bytes"), ("builtins", "range"),
    ("copyreg", "_reconstructor"), ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.dtypes", "*DType"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("scipy.sparse*", "*_matrix"), ("scipy.sparse*", "*_array"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"), ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
)  # fmt: skip


def is_allowed(module: str, name: str, own_globals: set[tuple[str, str]]) -> bool:
    if (module, name) in own_globals:
        return True
    return any(fnmatch.fnmatchcase(module, m) and fnmatch.fnmatchcase(name, n) for m, n in ALLOWED_GLOBALS)


class _Inert:
    """Stands in for a refused global: accepts any construction and state, does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()


@dataclass
class Audit:
    globals: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None


def audit_joblib(path, own_globals: set[tuple[str, str]], resolve) -> Audit:
    """Walk ``path`` with joblib; ``resolve(module, name)`` imports an allowed global."""
    from joblib import numpy_pickle

    audit = Audit()

    def find_class(unpickler, module, name):
        if (module, name) not in audit.globals:
            audit.globals.append((module, name))
        if not is_allowed(module, name, own_globals):
            audit.refused.append((module, name))
            return _Inert
        return resolve(module, name)

    with _patched(numpy_pickle.NumpyUnpickler, "find_class", find_class):
        try:
            numpy_pickle.load(path)
        except Exception as error:  # a stubbed or unresolvable global may break the object graph
            audit.error = f"{type(error).__name__}: {error}"
    return audit


@contextlib.contextmanager
def _patched(owner, attribute, replacement):
    original = owner.__dict__.get(attribute)
    setattr(owner, attribute, replacement)
    try:
        yield
    finally:
        if original is None:
            delattr(owner, attribute)
        else:
            setattr(owner, attribute, original)


def resolve_import(module: str, name: str):
    """Import normally (what pickle itself would do)."""
    return pickle._Unpickler.find_class(_BARE_UNPICKLER, module, name)


class _Bare(pickle._Unpickler):
    def __init__(self):
        self.proto = pickle.HIGHEST_PROTOCOL


_BARE_UNPICKLER = _Bare()
