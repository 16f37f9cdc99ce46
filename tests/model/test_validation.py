"""Input validation: every malformed request raises pixelnmf.InputError (a ValueError) whose
message names the offending input and, for shapes, the expected and received shape."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pixelnmf import InputError


@pytest.fixture()
def good(reference_inputs):
    """Two LS of the reference batch, as writable copies."""
    return {name: np.array(maps[:2]) for name, maps in reference_inputs.items()}


def _raises(model, inputs, *fragments):
    with pytest.raises(InputError) as caught:
        model.evaluate(inputs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


def test_valid_inputs_pass(model, good):
    assert model.predict(good).shape == (2,)


def test_unknown_input_name(model, good):
    good["BPix5"] = good["BPix4"]
    _raises(model, good, "BPix5", "unknown")


def test_misspelled_input_name(model, good):
    good["bpix1"] = good.pop("BPix1")
    message = _raises(model, good, "bpix1", "BPix1")
    assert "missing ['BPix1']" in message


def test_missing_input(model, good):
    del good["BPix3"]
    _raises(model, good, "missing", "BPix3")


def test_not_a_dict(model, good):
    with pytest.raises(InputError, match="dict"):
        model.predict(list(good.values()))


@pytest.mark.parametrize(
    "name, shape",
    [("BPix1", (2, 26, 71)), ("BPix2", (2, 56, 72)), ("BPix4", (2, 72, 130)), ("BPix3", (2, 90 * 72)), ("BPix1", (26, 72))],
    ids=["columns", "rows", "transposed", "flattened", "no_batch_axis"],
)
def test_wrong_per_ls_shape(model, good, name, shape):
    good[name] = np.zeros(shape, dtype=np.int32)
    expected = {"BPix1": "(N, 26, 72)", "BPix2": "(N, 58, 72)", "BPix3": "(N, 90, 72)", "BPix4": "(N, 130, 72)"}[name]
    message = _raises(model, good, repr(name), expected, str(shape))
    assert re.search(r"expected shape", message)


def test_mismatched_batch_sizes(model, good):
    good["BPix2"] = np.concatenate([good["BPix2"], good["BPix2"][:1]])
    _raises(model, good, "'BPix1': 2", "'BPix2': 3", "lumisections")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
def test_negative_counts(model, good, dtype):
    good = {name: maps.astype(dtype) for name, maps in good.items()}
    good["BPix3"][1, 10, 10] = -1
    _raises(model, good, "'BPix3'", "non-negative")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinity_in_float_input(model, good, bad):
    good = {name: maps.astype(np.float64) for name, maps in good.items()}
    good["BPix4"][0, 3, 3] = bad
    _raises(model, good, "'BPix4'", "finite")


@pytest.mark.parametrize("values", [np.zeros((2, 26, 72), dtype=bool), np.full((2, 26, 72), "1")], ids=["bool", "str"])
def test_non_numeric_input(model, good, values):
    good["BPix1"] = values
    _raises(model, good, "'BPix1'", "numeric")
