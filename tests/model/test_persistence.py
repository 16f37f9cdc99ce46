"""Persistence: the shipped joblib holds a PixelNMF whose state is plain numpy arrays and Python
builtins only (no scikit-learn object), and an unknown format version fails loudly."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from pixelnmf import FORMAT_VERSION, PixelNMF

BUILTIN_LEAVES = (str, int, float, bool, type(None))


def _walk(value, path="state"):
    """Yield (path, value) for every leaf; containers must be exact builtin dict/list/tuple."""
    if type(value) is dict:
        for key, item in value.items():
            assert type(key) is str, f"{path}: key {key!r} is a {type(key).__name__}"
            yield from _walk(item, f"{path}[{key!r}]")
    elif type(value) in (list, tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    else:
        yield path, value


def test_state_holds_only_numpy_arrays_and_builtins(model):
    state = model.__getstate__()
    assert set(state) == {"format_version", "parameters", "layers"}
    assert state["format_version"] == FORMAT_VERSION
    leaves = list(_walk(state))
    arrays = 0
    for path, leaf in leaves:
        if type(leaf) is np.ndarray:
            assert leaf.dtype.kind in "biuf", f"{path}: array of dtype {leaf.dtype}"
            arrays += 1
        else:
            # exact types: numpy scalars (np.float64 is a float subclass) are not builtins
            assert type(leaf) in BUILTIN_LEAVES, f"{path}: {type(leaf).__module__}.{type(leaf).__qualname__}"
    assert arrays == 4 * 5, "kept_rows, kept_columns, components, reference, zero_fraction per layer"


def test_solver_cache_is_not_persisted(model, reference_inputs):
    model.predict({name: maps[:1] for name, maps in reference_inputs.items()})
    assert "_solver_cache" not in model.__getstate__()
    assert "_solver_cache" not in pickle.loads(pickle.dumps(model)).__dict__


def test_joblib_round_trip_predicts_the_same(model, reference_inputs, tmp_path):
    import joblib

    path = tmp_path / "copy.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    assert type(loaded) is PixelNMF
    assert loaded.parameters == model.parameters
    for mine, theirs in zip(model.layers, loaded.layers, strict=True):
        for key, value in mine.items():
            np.testing.assert_array_equal(theirs[key], value)
    small = {name: maps[::4] for name, maps in reference_inputs.items()}
    for expected, got in zip(model.predict_with_score(small), loaded.predict_with_score(small), strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 0, None, "1"])
def test_wrong_format_version_raises_a_clear_value_error(model, version):
    state = dict(model.__getstate__(), format_version=version)
    fresh = PixelNMF.__new__(PixelNMF)
    with pytest.raises(ValueError, match=rf"model file format {version!r} is not supported.*format {FORMAT_VERSION}"):
        fresh.__setstate__(state)


def test_unpickling_a_model_of_another_format_version_fails(model):
    other = pickle.loads(pickle.dumps(model))
    other.format_version = FORMAT_VERSION + 1
    data = pickle.dumps(other)
    with pytest.raises(ValueError, match="not supported"):
        pickle.loads(data)
    state = dict(model.__getstate__())
    state.pop("format_version")
    with pytest.raises(ValueError, match="None"):
        PixelNMF.__new__(PixelNMF).__setstate__(state)
