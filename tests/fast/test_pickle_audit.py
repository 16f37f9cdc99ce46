"""The pickle walker lists every global, including those after array data, and runs none of them."""

from __future__ import annotations

import os

import joblib
import numpy as np
import pytest

from dialsgate.modelfile.pickle_audit import audit_joblib, danger_of, dangerous_globals


class _RunsCommand:
    """Unpickling this calls os.system(command): what a malicious model file does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "the-pickle-ran"
    yield path
    assert not path.exists(), "the audit executed a global of the model file"


def test_global_after_array_data_is_found_and_not_run(tmp_path, marker):
    model_file = tmp_path / "model.joblib"
    # The array comes first: a scanner of the opcode stream stops at its raw bytes.
    joblib.dump({"weights": np.arange(100_000, dtype=np.float64), "payload": _RunsCommand(f"touch {marker}")}, model_file)
    audit = audit_joblib(model_file)
    names = [f"{module}.{name}" for module, name, _ in audit.dangerous()]
    assert names == [f"{os.system.__module__}.system"]


def test_global_inside_an_object_array_is_found_and_not_run(tmp_path, marker):
    # joblib reads object arrays with a nested plain pickle.load: the walker must cover it too.
    model_file = tmp_path / "model.joblib"
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = "fine", _RunsCommand(f"touch {marker}")
    joblib.dump({"first": np.zeros(10), "objects": objects}, model_file)
    assert [name for _, name, _ in audit_joblib(model_file).dangerous()] == ["system"]


def test_compressed_file_is_walked(tmp_path, marker):
    model_file = tmp_path / "model.joblib"
    joblib.dump([np.ones(1000), _RunsCommand(f"touch {marker}")], model_file, compress=3)
    assert audit_joblib(model_file).dangerous()


def test_plain_estimator_is_listed_but_not_dangerous(tmp_path):
    from sklearn.decomposition import NMF

    model_file = tmp_path / "nmf.joblib"
    joblib.dump(NMF(n_components=2, max_iter=50, random_state=0).fit(np.random.default_rng(0).random((20, 6))), model_file)
    audit = audit_joblib(model_file)
    assert ("sklearn.decomposition._nmf", "NMF") in audit.to_resolve()
    assert audit.dangerous() == []


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("posix", "system"),
        ("nt", "system"),
        ("os", "execv"),
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("runpy", "run_path"),
        ("socket", "socket"),
        ("types", "CodeType"),
    ],
)
def test_danger_list_names_execution_and_io_primitives(module, name):
    assert danger_of(module, name) is not None


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("sklearn.decomposition._nmf", "NMF"),
        ("numpy", "dtype"),
        ("builtins", "set"),
        ("collections", "OrderedDict"),
        ("functools", "partial"),
        ("pathlib", "PosixPath"),
    ],
)
def test_danger_list_leaves_ordinary_model_globals_alone(module, name):
    assert danger_of(module, name) is None


def test_danger_list_entries_say_why():
    assert all(entry.why for entry in dangerous_globals())


# -- the audit fails closed: a walk that stops early leaves the rest unseen -----------------------


class _BreaksTheWalk:
    """Unpickles as set(collections.deque([...])): with deque replaced by the walk's inert stub,
    set() of it raises, and the walk stops before whatever follows."""

    def __reduce__(self):
        import collections

        return (set, (collections.deque([1, 2]),))


def test_walk_broken_before_a_dangerous_global_fails_closed(tmp_path, marker):
    model_file = tmp_path / "model.joblib"
    joblib.dump({"weights": np.ones(50), "provenance": (_BreaksTheWalk(), _RunsCommand(f"touch {marker}"))}, model_file)
    audit = audit_joblib(model_file)
    assert ("collections", "deque") in audit.globals
    assert not audit.dangerous(), "the walk should not have reached the payload (else this test proves nothing)"
    assert not audit.complete and not audit.safe_to_load
    assert "could not be fully audited" in audit.refusal() and "TypeError" in audit.refusal()


def test_a_second_pickle_after_the_first_fails_closed(tmp_path, marker):
    import pickle

    model_file = tmp_path / "model.pkl"
    with open(model_file, "wb") as stream:
        pickle.dump({"weights": [1.0, 2.0]}, stream)
        pickle.dump(_RunsCommand(f"touch {marker}"), stream)  # read by a handler calling pickle.load twice
    audit = audit_joblib(model_file)
    assert not audit.complete and "bytes follow the end of the pickle" in audit.error


def test_protocol_0_pickle_is_walked(tmp_path, marker):
    import pickle

    model_file = tmp_path / "model.pkl"
    model_file.write_bytes(pickle.dumps([1, _RunsCommand(f"touch {marker}")], protocol=0))
    assert [name for _, name, _ in audit_joblib(model_file).dangerous()] == ["system"]


def test_a_file_that_is_no_pickle_fails_closed(tmp_path):
    model_file = tmp_path / "model.bin"
    model_file.write_bytes(b"PK\x03\x04 a torch zip or anything else")
    audit = audit_joblib(model_file)
    assert not audit.safe_to_load and "could not be fully audited" in audit.refusal()


def test_object_npy_in_the_folder_is_audited(tmp_path, marker):
    from dialsgate.modelfile.pickle_audit import audit_any, folder_pickles

    objects = np.empty(1, dtype=object)
    objects[0] = _RunsCommand(f"touch {marker}")
    np.save(tmp_path / "lookup.npy", objects, allow_pickle=True)
    np.save(tmp_path / "numbers.npy", np.arange(4))
    joblib.dump({"a": 1}, tmp_path / "scaler.pkl")
    (tmp_path / "app.py").write_text("import numpy\n")
    model_file = tmp_path / "model.joblib"
    joblib.dump({"b": 2}, model_file)
    found = folder_pickles(tmp_path, model_file)
    assert [path.name for path in found] == ["lookup.npy", "scaler.pkl"]
    assert [name for _, name, _ in audit_any(tmp_path / "lookup.npy").dangerous()] == ["system"]
    assert audit_any(tmp_path / "scaler.pkl").safe_to_load
