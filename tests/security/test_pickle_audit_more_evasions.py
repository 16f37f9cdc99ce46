"""More ways to make the static pickle audit and the unpickler read different programs.

Each file is written opcode by opcode (the helpers of test_pickle_audit_evasions). Where joblib or
pickle would run a hidden call, the payload only touches a marker in the test's temporary folder;
the proofs that need the serving image's numpy 1.x run only there (numpy 2 refuses object scalars).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_pickle_audit_evasions import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NEWFALSE,
    NEWOBJ,
    NEWTRUE,
    NONE,
    POP,
    PROTO3,
    REDUCE,
    SETITEMS,
    STOP,
    TUPLE,
    TUPLE1,
    TUPLE3,
    call_opcodes,
    dtype,
    global_,
    no_ops,
    small_int,
    unicode,
)

from dialsgate.modelfile.pickle_audit import audit_model_file

BINPUT, BINGET, APPENDS, SETITEM, INST, OBJ = b"q", b"h", b"e", b"s", b"i", b"o"


def object_dtype() -> bytes:
    state = MARK + small_int(3) + unicode("|") + NONE + NONE + NONE + small_int(-1) + small_int(-1) + small_int(63) + TUPLE
    return global_("numpy", "dtype") + unicode("O8") + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE + state + BUILD


def wrapper_state(count: int) -> bytes:
    return (
        EMPTY_DICT
        + MARK
        + unicode("subclass") + global_("numpy", "ndarray")
        + unicode("shape") + MARK + small_int(count) + TUPLE
        + unicode("order") + unicode("C")
        + unicode("dtype") + dtype("f4", -1)
        + unicode("allow_mmap") + NEWFALSE
        + SETITEMS
    )  # fmt: skip


def swallowed(command: str, count: int) -> tuple[bytes, bytes]:
    """Array data that, read as opcodes, starts with a BINBYTES swallowing the hidden call after it."""
    hidden = call_opcodes(command) + NONE
    size = 4 * count
    swallow = b"B" + (size - 5 + len(hidden)).to_bytes(4, "little")
    return swallow + b"\x00" * (size - len(swallow)), hidden


def wrapper_through_scalar_by_inst(command: str, count: int = 64) -> bytes:
    """numpy's scalar(object dtype, wrapper) called by INST (protocol 0's call) instead of REDUCE:
    it returns the wrapper itself; joblib reads its array after the BUILD."""
    wrapper = global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ
    data, hidden = swallowed(command, count)
    call = MARK + object_dtype() + wrapper + INST + b"numpy.core.multiarray\nscalar\n"
    return PROTO3 + call + wrapper_state(count) + BUILD + data + hidden + POP + STOP


def wrapper_through_scalar_by_obj(command: str, count: int = 64) -> bytes:
    """The same through OBJ (the callable on the stack after the MARK)."""
    wrapper = global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ
    data, hidden = swallowed(command, count)
    call = MARK + global_("numpy.core.multiarray", "scalar") + object_dtype() + wrapper + OBJ
    return PROTO3 + call + wrapper_state(count) + BUILD + data + hidden + POP + STOP


def wrapper_of_a_folder_class(command: str, count: int = 64) -> bytes:
    """A folder class deriving from joblib's wrapper through an alias: joblib's isinstance takes it
    for a wrapper and reads its array."""
    data, hidden = swallowed(command, count)
    return PROTO3 + global_("model", "Holder") + EMPTY_TUPLE + NEWOBJ + wrapper_state(count) + BUILD + data + hidden + POP + STOP


FOLDER_WRAPPER = "from joblib.numpy_pickle import NumpyArrayWrapper as Base\n\n\nclass Holder(Base):\n    pass\n"


def wrapper_built_twice_through_the_memo(command: str, count: int = 16) -> bytes:
    """A wrapper memoized before its BUILD and fetched again: joblib reads an array after each BUILD
    (the memo keeps the wrapper), and the hidden call comes after the second array."""
    wrapper = global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + BINPUT + b"\x07"
    first = wrapper + wrapper_state(count) + BUILD + b"\x00" * (4 * count) + POP
    second = BINGET + b"\x07" + wrapper_state(count) + BUILD + b"\x00" * (4 * count)
    return PROTO3 + first + second + call_opcodes(command) + STOP


@pytest.mark.parametrize(
    "write", [wrapper_through_scalar_by_inst, wrapper_through_scalar_by_obj, wrapper_built_twice_through_the_memo]
)
def test_the_audit_refuses_what_joblib_reads_as_a_wrapper(write, tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(write(f"touch {tmp_path / 'ran'}"))
    assert audit_model_file(path).refusal() is not None


def test_the_memo_fetched_wrapper_s_array_is_skipped_and_the_call_after_it_seen(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(wrapper_built_twice_through_the_memo(f"touch {tmp_path / 'ran'}"))
    assert "posix.system (called by REDUCE)" in audit_model_file(path).refusal()


def test_a_folder_class_that_may_be_joblib_s_wrapper_is_refused(tmp_path):
    code_dir = tmp_path / "server"
    code_dir.mkdir()
    (code_dir / "model.py").write_text(FOLDER_WRAPPER)
    path = code_dir / "model.joblib"
    path.write_bytes(wrapper_of_a_folder_class(f"touch {tmp_path / 'ran'}"))
    refusal = audit_model_file(path, code_dir).refusal()
    assert refusal is not None and "model.Holder" in refusal and "array wrapper" in refusal


def test_a_folder_class_binding_dunder_class_is_refused(tmp_path):
    code_dir = tmp_path / "server"
    code_dir.mkdir()
    (code_dir / "model.py").write_text("class Holder:\n    __class__ = property(lambda self: dict)\n")
    path = code_dir / "model.joblib"
    path.write_bytes(PROTO3 + global_("model", "Holder") + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + BUILD + STOP)
    refusal = audit_model_file(path, code_dir).refusal()
    assert refusal is not None and "binds __class__" in refusal


def _serving_python():
    """A Python with joblib and numpy 1.x (the serving image's), or None."""
    try:
        import joblib  # noqa: F401
        import numpy
    except ImportError:
        return None
    return sys.executable if int(numpy.__version__.split(".")[0]) < 2 else None


@pytest.mark.parametrize("write", [wrapper_through_scalar_by_inst, wrapper_through_scalar_by_obj])
def test_joblib_really_reads_the_inst_and_obj_wrappers(write, tmp_path):
    """The evasion is real where numpy 1.x unpickles object scalars (the serving image)."""
    python = _serving_python()
    if python is None:
        pytest.skip("needs joblib with numpy 1.x (numpy 2 refuses object scalars)")
    marker = tmp_path / "ran"
    path = tmp_path / "model.joblib"
    path.write_bytes(write(f"touch {marker}"))
    finished = subprocess.run(
        [python, "-c", "import sys, joblib; print(joblib.load(sys.argv[1]).dtype)", str(path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert marker.exists()


# --------------------------------------------------------------------------- APPENDS / SETITEMS onto made objects


def setitem_onto_a_dataframe() -> bytes:
    """pandas' DataFrame.__setitem__ calls a callable key with the frame (apply_if_callable):
    SETITEM onto a DataFrame calls what the pickle names, a use the walk must not take for storing."""
    frame = global_("pandas.core.frame", "DataFrame") + EMPTY_TUPLE + REDUCE
    return PROTO3 + frame + global_("builtins", "len") + small_int(1) + SETITEM + STOP


def appends_onto_a_random_state() -> bytes:
    """APPENDS calls the object's extend (or append): only a container's may run."""
    state = global_("numpy.random._pickle", "__randomstate_ctor") + unicode("MT19937") + TUPLE1 + REDUCE
    return PROTO3 + state + MARK + small_int(1) + small_int(2) + APPENDS + STOP


def setitems_onto_an_ordered_dict() -> bytes:
    made = global_("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    return PROTO3 + made + MARK + unicode("a") + small_int(1) + SETITEMS + STOP


@pytest.mark.parametrize("write", [setitem_onto_a_dataframe, appends_onto_a_random_state])
def test_items_added_to_what_is_not_a_container_are_refused(write, tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(write())
    refusal = audit_model_file(path).refusal()
    assert refusal is not None and "APPENDS/SETITEMS" in refusal


def test_items_added_to_a_standard_container_pass(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(setitems_onto_an_ordered_dict())
    assert audit_model_file(path).refusal() is None


def test_pandas_really_calls_a_callable_key(tmp_path):
    pytest.importorskip("pandas")
    import pickle

    seen = pickle.loads(setitem_onto_a_dataframe())
    assert list(seen.columns) == [0]  # len(frame) == 0 became the column's name: the key was called


# --------------------------------------------------------------------------- protocol 2's name mapping


@pytest.mark.parametrize(("module", "name"), [("__builtin__", "reduce"), ("__builtin__", "intern"), ("exceptions", "Exception")])
def test_names_the_unpickler_maps_for_old_protocols_are_judged_by_their_pickled_name(module, name, tmp_path):
    """With a protocol below 3 the unpickler maps Python 2 names (__builtin__.reduce is
    functools.reduce): none of them is on the allowlist under its Python 2 name."""
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x02" + global_(module, name) + STOP)
    assert f"{module}.{name}" in audit_model_file(path).refusal()


# --------------------------------------------------------------------------- a wrapper's state key given twice


def wrapper_whose_dtype_is_given_again_past_the_kept_keys(command: str, count: int = 64, filler: int = 70) -> bytes:
    """The wrapper's state names its dtype as float64, then, after more keys than the walk keeps,
    again as float32: the unpickler keeps the last (4-byte items), a walk keeping the first skips
    8 * count bytes, over the hidden call joblib executes."""
    keys = b"".join(unicode(f"note_{i}") + NONE for i in range(filler))
    state = (
        EMPTY_DICT
        + MARK
        + unicode("subclass") + global_("numpy", "ndarray")
        + unicode("shape") + MARK + small_int(count) + TUPLE
        + unicode("order") + unicode("C")
        + unicode("dtype") + dtype("f8", -1)
        + unicode("allow_mmap") + NEWFALSE
        + keys
        + unicode("dtype") + dtype("f4", -1)
        + SETITEMS
    )  # fmt: skip
    wrapper = global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ
    hidden = call_opcodes(command)
    hidden += no_ops(4 * count - len(hidden))
    return PROTO3 + wrapper + state + BUILD + b"\x00" * (4 * count) + hidden + STOP


def test_a_state_key_given_again_past_the_kept_keys_is_the_one_the_walk_uses(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(wrapper_whose_dtype_is_given_again_past_the_kept_keys(f"touch {tmp_path / 'ran'}"))
    assert audit_model_file(path).refusal() is not None


def test_joblib_really_reads_the_last_dtype(tmp_path):
    pytest.importorskip("joblib")
    marker = tmp_path / "ran"
    path = tmp_path / "model.joblib"
    path.write_bytes(wrapper_whose_dtype_is_given_again_past_the_kept_keys(f"touch {marker}"))
    finished = subprocess.run(
        [sys.executable, "-c", "import sys, joblib; print(joblib.load(sys.argv[1]).dtype)", str(path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stdout.strip() == "float32"
    assert marker.exists()


def folder_class_with_reduce() -> bytes:
    """A folder class pickled by its own __reduce__ (cls, args, state): REDUCE of the class, then BUILD."""
    return (
        PROTO3
        + global_("model", "Scorer")
        + EMPTY_TUPLE
        + REDUCE
        + EMPTY_DICT
        + unicode("w")
        + small_int(1)
        + SETITEM
        + BUILD
        + STOP
    )


def test_build_on_an_instance_of_a_folder_class_made_by_reduce_passes(tmp_path):
    code_dir = tmp_path / "server"
    code_dir.mkdir()
    (code_dir / "model.py").write_text("class Scorer:\n    def __reduce__(self):\n        return (Scorer, (), self.__dict__)\n")
    path = code_dir / "model.joblib"
    path.write_bytes(folder_class_with_reduce())
    audit = audit_model_file(path, code_dir)
    assert audit.refusal() is None and ("model", "Scorer") in audit.folder_globals


# --------------------------------------------------------------------------- a BUILD state that is a mapping the walk cannot read


EMPTY_LIST, APPEND, TUPLE2 = b"]", b"a", b"\x86"


def _pair_list(key: bytes) -> bytes:
    return EMPTY_LIST + MARK + key + global_("builtins", "int") + TUPLE2 + APPENDS


def estimator_with_a_made_state(how: str) -> bytes:
    """An NMF whose BUILD state is not a dict literal but a mapping the pickle makes (or pairs):
    BaseEstimator.__setstate__ (or the default BUILD) puts its items in the instance __dict__, so
    ``__setstate__`` becomes an instance attribute the next BUILD calls (here int('zz'))."""
    key = unicode("__setstate__")
    if how == "dict-call":
        state = global_("builtins", "dict") + _pair_list(key) + TUPLE1 + REDUCE
    elif how == "ordered-dict":
        state = global_("collections", "OrderedDict") + _pair_list(key) + TUPLE1 + REDUCE
    elif how == "tuple-of-pairs":
        state = key + global_("builtins", "int") + TUPLE2 + TUPLE1
    elif how == "list-of-pairs":
        state = _pair_list(key)
    elif how == "key-made-by-str":
        made_key = global_("builtins", "str") + key + TUPLE1 + REDUCE
        state = EMPTY_DICT + made_key + global_("builtins", "int") + SETITEM
    else:
        raise ValueError(how)
    nmf = global_("sklearn.decomposition._nmf", "NMF") + EMPTY_TUPLE + NEWOBJ
    return PROTO3 + nmf + state + BUILD + unicode("zz") + BUILD + STOP


MADE_STATES = ["dict-call", "ordered-dict", "tuple-of-pairs", "list-of-pairs", "key-made-by-str"]


@pytest.mark.parametrize("how", MADE_STATES)
def test_a_build_state_whose_keys_the_walk_cannot_read_is_refused(how, tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(estimator_with_a_made_state(how))
    assert audit_model_file(path).refusal() is not None


@pytest.mark.parametrize("how", ["dict-call", "ordered-dict", "key-made-by-str"])
def test_the_instance_setstate_really_is_called(how):
    """The unpickler calls the instance attribute: int('zz') raises int's own ValueError."""
    pytest.importorskip("sklearn")
    import pickle

    with pytest.raises(ValueError, match="invalid literal for int"):
        pickle.loads(estimator_with_a_made_state(how))


# --------------------------------------------------------------------------- copyreg._reconstructor with a base other than object


def reconstructor_with_base(base_module: str, base_name: str) -> bytes:
    """copyreg._reconstructor(cls, base, state) runs base.__new__(cls, state) and, unless base is
    object, base.__init__(obj, state): the base is called with the pickle's argument."""
    cls = global_("collections", "OrderedDict")
    args = cls + global_(base_module, base_name) + EMPTY_DICT + TUPLE3
    return PROTO3 + global_("copyreg", "_reconstructor") + args + REDUCE + STOP


def test_a_reconstructor_base_is_judged_as_called(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(reconstructor_with_base("sklearn.decomposition._nmf", "NMF"))
    refusal = audit_model_file(path).refusal()
    assert refusal is not None and "sklearn.decomposition._nmf.NMF (called by REDUCE" in refusal


def test_a_reconstructor_with_a_builtin_base_passes(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(reconstructor_with_base("builtins", "dict"))
    assert audit_model_file(path).refusal() is None


def test_a_dunder_key_added_to_a_state_after_its_build_is_refused(tmp_path):
    """A state dict memoized, handed to BUILD, then fetched again and given __setstate__: a class
    that keeps the dict itself as its __dict__ would see it."""
    nmf = global_("sklearn.decomposition._nmf", "NMF") + EMPTY_TUPLE + NEWOBJ
    body = (
        nmf
        + EMPTY_DICT
        + BINPUT
        + b"\x01"
        + BUILD
        + BINGET
        + b"\x01"
        + unicode("__setstate__")
        + global_("builtins", "int")
        + SETITEM
        + POP
    )
    path = tmp_path / "model.pkl"
    path.write_bytes(PROTO3 + body + STOP)
    assert audit_model_file(path).refusal() is not None
