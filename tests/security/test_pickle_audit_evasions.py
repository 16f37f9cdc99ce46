"""Model files written to make the static pickle audit and joblib.load read different programs.

The audit follows joblib's container statically: after a ``NumpyArrayWrapper`` it skips the raw
array bytes by the length the wrapper's shape and dtype give. Whatever makes the audit skip more
(or fewer) bytes than joblib reads lets a file hide opcodes that only joblib executes. Each file
here is written opcode by opcode; a second test loads it with joblib for real, in a subprocess,
to show the hidden payload runs (it only touches a marker file in the test's temporary folder).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from dialsgate.modelfile.pickle_audit import audit_model_file

PROTO3, STOP, MARK, TUPLE, TUPLE1, TUPLE3 = b"\x80\x03", b".", b"(", b"t", b"\x85", b"\x87"
EMPTY_TUPLE, EMPTY_DICT, SETITEMS, NEWOBJ, REDUCE, BUILD, POP = b")", b"}", b"u", b"\x81", b"R", b"b", b"0"
NONE, NEWFALSE, NEWTRUE = b"N", b"\x89", b"\x88"


def unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def global_(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def small_int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)  # BININT


def dtype(code: str, elsize: int) -> bytes:
    """numpy.dtype(code, False, True) with the BUILD state numpy writes, its elsize chosen."""
    state = MARK + small_int(3) + unicode("<") + NONE + NONE + NONE + small_int(elsize) + small_int(1) + small_int(0) + TUPLE
    return global_("numpy", "dtype") + unicode(code) + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE + state + BUILD


def array_wrapper(shape: tuple[int, ...], dtype_opcodes: bytes) -> bytes:
    """joblib's NumpyArrayWrapper (NEWOBJ + BUILD of its state), without an alignment padding."""
    state = (
        EMPTY_DICT
        + MARK
        + unicode("subclass") + global_("numpy", "ndarray")
        + unicode("shape") + MARK + b"".join(small_int(n) for n in shape) + TUPLE
        + unicode("order") + unicode("C")
        + unicode("dtype") + dtype_opcodes
        + unicode("allow_mmap") + NEWFALSE
        + SETITEMS
    )  # fmt: skip
    return global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + state + BUILD


def no_ops(length: int) -> bytes:
    """Opcodes that leave the stack as it was, exactly ``length`` bytes (length >= 2)."""
    assert length >= 2
    out = b""
    while length % 2:
        out += b"K\x00" + POP  # BININT1 0, POP: 3 bytes
        length -= 3
    return out + (NONE + POP) * (length // 2)


def call_opcodes(command: str) -> bytes:
    return global_("posix", "system") + unicode(command) + TUPLE1 + REDUCE + POP


def dtype_itemsize_mismatch(command: str, count: int = 64) -> bytes:
    """A float32 array whose dtype state claims 8-byte items: numpy keeps 4 (a fixed-size type
    ignores elsize), so joblib reads ``4 * count`` bytes and then executes the next ``4 * count``,
    which a walk that trusts elsize skips as array data."""
    hidden = call_opcodes(command)
    assert len(hidden) + 2 <= 4 * count
    hidden += no_ops(4 * count - len(hidden))
    return PROTO3 + array_wrapper((count,), dtype("f4", 8)) + b"\x00" * (4 * count) + hidden + STOP


def wrapper_through_an_identity(command: str, count: int = 64) -> bytes:
    """A NumpyArrayWrapper made by NEWOBJ but handed through ``numpy.core.multiarray.scalar``
    with an object dtype, which returns its argument itself; the BUILD then lands on what the walk
    sees as scalar's result, not as a wrapper. joblib checks the object (isinstance), reads the
    array's ``4 * count`` bytes and executes what follows; a walk that does not know the object is a
    wrapper reads the array bytes as opcodes: they start with a BINBYTES whose length swallows the
    hidden call."""
    object_dtype = global_("numpy", "dtype") + unicode("O8") + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE
    object_dtype += MARK + small_int(3) + unicode("|") + NONE + NONE + NONE + small_int(-1) + small_int(-1) + small_int(63)
    object_dtype += TUPLE + BUILD
    wrapper = global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ
    identity = global_("numpy.core.multiarray", "scalar") + object_dtype + wrapper + b"\x86" + REDUCE  # TUPLE2
    state = (
        EMPTY_DICT
        + MARK
        + unicode("subclass") + global_("numpy", "ndarray")
        + unicode("shape") + MARK + small_int(count) + TUPLE
        + unicode("order") + unicode("C")
        + unicode("dtype") + dtype("f4", -1)
        + unicode("allow_mmap") + NEWFALSE
        + SETITEMS
    )  # fmt: skip
    hidden = call_opcodes(command) + NONE  # joblib's stack now holds as many items as the walk's
    data_size = 4 * count
    swallow = b"B" + struct.pack("<I", data_size - 5 + len(hidden))  # BINBYTES over the rest of the data and the call
    data = swallow + b"\x00" * (data_size - len(swallow))
    return PROTO3 + identity + state + BUILD + data + hidden + POP + STOP


EVASIONS = [
    pytest.param(dtype_itemsize_mismatch, id="float32-dtype-with-elsize-8"),
    pytest.param(wrapper_through_an_identity, id="wrapper-through-numpy-scalar"),
]


@pytest.mark.parametrize("write", EVASIONS)
def test_the_audit_refuses_a_file_joblib_reads_differently(write, tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(write(f"touch {tmp_path / 'ran'}"))
    refusal = audit_model_file(path).refusal()
    assert refusal is not None, "the audit passed a file whose hidden opcodes joblib.load executes"


@pytest.mark.parametrize("write", EVASIONS)
def test_joblib_really_runs_the_hidden_opcodes(write, tmp_path):
    """The evasion is real (else the test above would prove nothing): joblib.load, in a subprocess,
    executes the call the audit should have seen; it touches a marker in tmp_path only."""
    pytest.importorskip("joblib")
    numpy = pytest.importorskip("numpy")
    if write is wrapper_through_an_identity and int(numpy.__version__.split(".")[0]) >= 2:
        pytest.skip("numpy 2 no longer unpickles an object-dtype scalar; the serving image's numpy 1.26 returns the object")
    marker = tmp_path / "ran"
    path = tmp_path / "model.joblib"
    path.write_bytes(write(f"touch {marker}"))
    finished = subprocess.run(
        [sys.executable, "-c", "import sys, joblib; print(joblib.load(sys.argv[1]).dtype)", str(path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stdout.strip() == "float32"
    assert marker.exists(), "joblib.load did not run the hidden call"


def test_no_ops_are_exact():
    for length in range(2, 40):
        assert len(no_ops(length)) == length


# --------------------------------------------------------------------------- an allowlisted class whose __setstate__ runs code


def scipy_distribution_with_template(command: str) -> bytes:
    """scipy.stats' norm as pickle writes it (NEWOBJ of norm_gen, BUILD of its __dict__), its
    ``_parse_arg_template`` replaced: rv_generic.__setstate__ exec()s that string to rebuild the
    argument parsers, so BUILD runs any Python the file holds."""
    source = f"import os\nos.system({command!r})\n"
    return (
        PROTO3
        + global_("scipy.stats._continuous_distns", "norm_gen") + EMPTY_TUPLE + NEWOBJ
        + EMPTY_DICT + unicode("_parse_arg_template") + unicode(source) + b"s"  # SETITEM
        + BUILD
        + STOP
    )  # fmt: skip


def test_the_audit_refuses_a_state_that_a_setstate_executes(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(scipy_distribution_with_template(f"touch {tmp_path / 'ran'}"))
    refusal = audit_model_file(path).refusal()
    assert refusal is not None, "the audit passed a scipy distribution whose __setstate__ exec()s the file's text"
    assert "norm_gen" in refusal


def test_scipy_really_executes_the_distribution_template(tmp_path):
    pytest.importorskip("scipy.stats")
    marker = tmp_path / "ran"
    path = tmp_path / "model.joblib"
    path.write_bytes(scipy_distribution_with_template(f"touch {marker}"))
    # The load itself ends in a KeyError (the template defined no parser): the payload ran before.
    subprocess.run(
        [sys.executable, "-c", "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert marker.exists(), "unpickling the distribution did not exec its template"


# --------------------------------------------------------------------------- a folder module named like the standard library


@pytest.mark.parametrize(("module", "name"), [("posix", "system"), ("builtins", "exec"), ("os", "system")])
def test_a_folder_module_cannot_vouch_for_a_module_python_has_already_imported(module, name, tmp_path):
    """A server folder holding ``posix.py`` (``class system``) does not make ``posix.system`` a
    folder class: the unpickler finds the module Python imported at start-up (sys.modules), never
    the folder's file, and calls the real os.system. The audit must not judge such a global by the
    folder's source."""
    code_dir = tmp_path / "server"
    code_dir.mkdir()
    (code_dir / f"{module}.py").write_text(f"class {name}:\n    def __init__(self, *args):\n        self.args = args\n")
    path = code_dir / "model.joblib"
    path.write_bytes(PROTO3 + global_(module, name) + unicode(f"touch {tmp_path / 'ran'}") + TUPLE1 + REDUCE + STOP)
    refusal = audit_model_file(path, code_dir).refusal()
    assert refusal is not None, (
        f"the folder's {module}.py vouched for {module}.{name}, which the unpickler takes from Python itself"
    )
    assert f"{module}.{name}" in refusal


def test_the_unpickler_takes_posix_from_python_not_from_the_folder(tmp_path):
    """With the server folder first on sys.path (as MLServer puts it), ``posix.system`` is still
    the real one: the folder's posix.py is never imported."""
    code_dir = tmp_path / "server"
    code_dir.mkdir()
    (code_dir / "posix.py").write_text("class system:\n    def __init__(self, *args):\n        self.args = args\n")
    marker = tmp_path / "ran"
    path = code_dir / "model.joblib"
    path.write_bytes(PROTO3 + global_("posix", "system") + unicode(f"touch {marker}") + TUPLE1 + REDUCE + STOP)
    loader = "import pickle, sys; sys.path.insert(0, sys.argv[2]); print(pickle.load(open(sys.argv[1], 'rb')))"
    finished = subprocess.run(
        [sys.executable, "-c", loader, str(path), str(code_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stdout.strip() == "0"  # os.system's exit status, not an instance of the folder's class
    assert marker.exists()


# --------------------------------------------------------------------------- BUILD's dunder rule past the kept items


def estimator_with_instance_setstate(filler: int) -> bytes:
    """An NMF whose first BUILD state (a dict: BaseEstimator.__setstate__ updates __dict__ with it)
    sets ``__setstate__`` on the instance after ``filler`` other keys; a second BUILD then calls that
    instance attribute with the next state (pickle looks ``__setstate__`` up on the instance)."""
    keys = b"".join(unicode(f"fitted_{i}_") + NONE for i in range(filler))
    state = EMPTY_DICT + MARK + keys + unicode("__setstate__") + global_("builtins", "len") + SETITEMS
    return (
        PROTO3
        + global_("sklearn.decomposition._nmf", "NMF") + EMPTY_TUPLE + NEWOBJ
        + state + BUILD
        + unicode("anything") + BUILD
        + STOP
    )  # fmt: skip


@pytest.mark.parametrize("filler", [3, 64, 200])
def test_build_may_not_set_a_dunder_attribute_however_many_keys_come_first(filler, tmp_path):
    """The walk refuses a BUILD state that sets a dunder attribute; it keeps only the first
    KEPT_ITEMS keys of a dict, so the rule must hold for the keys it does not keep too."""
    path = tmp_path / "model.joblib"
    path.write_bytes(estimator_with_instance_setstate(filler))
    assert audit_model_file(path).refusal() is not None


# --------------------------------------------------------------------------- an .npy whose header spells "object" out


def object_npy(descr: str, command: str) -> bytes:
    """An .npy whose header names the object dtype in words (numpy.dtype('object') is the object
    dtype): numpy.load(allow_pickle=True) unpickles its data, here a call of posix.system."""
    header = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': (1,), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    data = PROTO3 + global_("posix", "system") + unicode(command) + TUPLE1 + REDUCE + STOP
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


@pytest.mark.parametrize("descr", ["object", "object_", "object0"])
def test_an_npy_naming_the_object_dtype_in_words_is_audited(descr, tmp_path):
    path = tmp_path / "model.npy"
    path.write_bytes(object_npy(descr, f"touch {tmp_path / 'ran'}"))
    refusal = audit_model_file(path).refusal()
    assert refusal is not None, f"an .npy of dtype {descr!r} (Python objects: a pickle) was taken for plain numbers"
    assert "posix.system" in refusal


def test_numpy_really_unpickles_an_npy_whose_descr_is_object(tmp_path):
    numpy = pytest.importorskip("numpy")
    marker = tmp_path / "ran"
    path = tmp_path / "model.npy"
    path.write_bytes(object_npy("object", f"touch {marker}"))
    numpy.load(path, allow_pickle=True)
    assert marker.exists()
