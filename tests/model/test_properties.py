"""Properties of the whole model on small batches drawn from the reference batch (hypothesis
draws the lumisection indices), and the V2 datatype round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pixelnmf import datatypes

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
N_REFERENCE = 40
indices = st.lists(st.integers(0, N_REFERENCE - 1), min_size=1, max_size=4)


def _take(inputs: dict, rows) -> dict:
    return {name: maps[np.asarray(rows, dtype=int)] for name, maps in inputs.items()}


def _check_outputs(flag, metric, n):
    assert flag.shape == (n,) and flag.dtype == np.bool_
    assert metric.shape == (n,) and metric.dtype == np.float32
    assert np.isfinite(metric).all() and (metric >= 0).all()
    np.testing.assert_array_equal(metric > 0, flag)


def test_reference_batch_has_the_expected_size(reference_batch):
    assert len(reference_batch["kind"]) == N_REFERENCE


@SETTINGS
@given(first=indices, second=indices)
def test_predict_of_a_concatenation_is_the_concatenation_of_predicts(model, reference_inputs, first, second):
    flag_1, metric_1 = model.predict_with_score(_take(reference_inputs, first))
    flag_2, metric_2 = model.predict_with_score(_take(reference_inputs, second))
    flag, metric = model.predict_with_score(_take(reference_inputs, first + second))
    _check_outputs(flag, metric, len(first) + len(second))
    np.testing.assert_array_equal(flag, np.concatenate([flag_1, flag_2]))
    np.testing.assert_array_equal(metric, np.concatenate([metric_1, metric_2]))


def test_batches_longer_than_the_internal_chunk_give_the_same_answers(model, reference_inputs):
    """CHUNK_SIZE + 8 LS are evaluated internally in two blocks; the answers must not depend on that."""
    from pixelnmf.model import CHUNK_SIZE

    n_rows = CHUNK_SIZE + 8
    rows = (list(range(N_REFERENCE)) * (n_rows // N_REFERENCE + 1))[:n_rows]
    whole = model.evaluate(_take(reference_inputs, rows), keep_intermediates=True)
    first, second = (
        model.evaluate(_take(reference_inputs, rows[:40]), keep_intermediates=True),
        model.evaluate(_take(reference_inputs, rows[40:]), keep_intermediates=True),
    )
    _check_outputs(whole.flag, whole.metric, n_rows)
    np.testing.assert_array_equal(whole.flag, np.concatenate([first.flag, second.flag]))
    np.testing.assert_array_equal(whole.metric, np.concatenate([first.metric, second.metric]))
    np.testing.assert_array_equal(whole.combined, np.concatenate([first.combined, second.combined]))
    for name in model.input_names:
        assert whole.layers[name].clustered.shape[0] == n_rows
        np.testing.assert_array_equal(
            whole.layers[name].clustered, np.concatenate([first.layers[name].clustered, second.layers[name].clustered])
        )


@SETTINGS
@given(data=st.data())
def test_permuting_lumisections_permutes_the_outputs(model, reference_inputs, data):
    rows = data.draw(st.lists(st.integers(0, N_REFERENCE - 1), min_size=2, max_size=5, unique=True), label="rows")
    order = np.array(data.draw(st.permutations(range(len(rows))), label="order"))
    flag, metric = model.predict_with_score(_take(reference_inputs, rows))
    flag_p, metric_p = model.predict_with_score(_take(reference_inputs, np.asarray(rows)[order]))
    np.testing.assert_array_equal(flag_p, flag[order])
    np.testing.assert_array_equal(metric_p, metric[order])


@SETTINGS
@given(rows=indices, data=st.data())
def test_a_global_scale_factor_per_ls_does_not_change_flags(model, reference_inputs, rows, data):
    factors = np.array(data.draw(st.lists(st.sampled_from([2, 3]), min_size=len(rows), max_size=len(rows)), label="factors"))
    batch = _take(reference_inputs, rows)
    # Only where the scaling keeps every layer on the same side of the entries cut (checked here).
    for layer in model.layers:
        totals = batch[layer["name"]].reshape(len(rows), -1).sum(axis=1, dtype=np.int64)
        assume(np.array_equal(totals > layer["min_entries"], totals * factors > layer["min_entries"]))
    scaled = {name: maps * factors[:, None, None].astype(maps.dtype) for name, maps in batch.items()}
    flag, metric = model.predict_with_score(batch)
    flag_s, metric_s = model.predict_with_score(scaled)
    _check_outputs(flag_s, metric_s, len(rows))
    np.testing.assert_array_equal(flag_s, flag)


@st.composite
def nonnegative_inputs(draw, model, reference_inputs):
    """Per layer: a reference LS, all zeros, or a reference LS with spikes up to the INT32 maximum
    (the template's datatype), as int32 or float64."""
    n = draw(st.integers(1, 3), label="n")
    rows = draw(st.lists(st.integers(0, N_REFERENCE - 1), min_size=n, max_size=n), label="rows")
    dtype = draw(st.sampled_from([np.int32, np.float64]), label="dtype")
    inputs = {}
    for name, shape in model.input_shapes.items():
        maps = np.array(reference_inputs[name][rows], dtype=dtype)
        mode = draw(st.sampled_from(["reference", "zeros", "spikes"]), label=f"{name} mode")
        if mode == "zeros":
            maps[:] = 0
        elif mode == "spikes":
            for _ in range(draw(st.integers(1, 5))):
                ls, r, c = draw(st.integers(0, n - 1)), draw(st.integers(0, shape[0] - 1)), draw(st.integers(0, shape[1] - 1))
                maps[ls, r, c] = draw(st.sampled_from([0, 1, 2**20, 2**31 - 1]))
        inputs[name] = maps
    return inputs


@SETTINGS
@given(data=st.data())
def test_no_nan_for_non_negative_inputs(model, reference_inputs, data):
    inputs = data.draw(nonnegative_inputs(model, reference_inputs))
    n = len(inputs["BPix1"])
    result = model.evaluate(inputs, keep_intermediates=True)
    _check_outputs(result.flag, result.metric, n)
    for name, layer in result.layers.items():
        for item in ("preprocessed", "reconstruction", "loss"):
            assert np.isfinite(getattr(layer, item)).all(), f"{name} {item} not finite"
    for maps in inputs.values():
        empty = maps.reshape(n, -1).sum(axis=1) == 0
        assert not result.flag[empty].any() and (result.metric[empty] == 0).all()


def test_all_zero_maps_give_flag_false_and_metric_zero(model):
    zeros = {name: np.zeros((3, *shape), dtype=np.int32) for name, shape in model.input_shapes.items()}
    result = model.evaluate(zeros, keep_intermediates=True)
    _check_outputs(result.flag, result.metric, 3)
    assert not result.flag.any() and not result.evaluated.any()
    for layer in result.layers.values():
        assert np.isfinite(layer.loss).all() and (layer.preprocessed == 0).all()


def test_empty_batch_gives_empty_outputs(model):
    empty = {name: np.zeros((0, *shape), dtype=np.int32) for name, shape in model.input_shapes.items()}
    flag, metric = model.predict_with_score(empty)
    _check_outputs(flag, metric, 0)
    assert model.predict(empty).shape == (0,)
    result = model.evaluate(empty, keep_intermediates=True)
    assert result.combined.shape == (0, *model.grid_shape)


def test_every_stage_accepts_an_empty_batch(model):
    from pixelnmf import clustering, combination, entries, flagging, preprocessing

    layer = model.layers[0]
    raw = np.zeros((0, *layer["shape"]), dtype=np.int32)
    assert entries.has_enough_entries([raw], [layer["min_entries"]]).shape == (0,)
    reduced = preprocessing.remove_cross(raw, layer["kept_rows"], layer["kept_columns"])
    assert reduced.shape == (0, *model.grid_shape)
    normalised = preprocessing.normalise(reduced, layer["reference"], dtype=np.float32)
    assert normalised.shape == (0, *model.grid_shape) and normalised.dtype == np.float32
    clustered = clustering.cluster_loss(normalised, 0.04, (2, 16), 1)
    combined = combination.combine_layers([clustered, clustered], model.grid_shape, model.loss_mask, 2)
    flag, metric = flagging.flag_and_score(combined, ((1, 8), (2, 4)))
    assert flag.shape == metric.shape == (0,)


V2_NAMES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]
NUMPY_OF = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}  # fmt: skip


@pytest.mark.parametrize("name", V2_NAMES)
def test_v2_datatype_round_trip(name):
    assert datatypes.normalise_datatype(name) == name
    assert datatypes.normalise_datatype(f"TYPE_{name}") == name
    dtype = datatypes.numpy_dtype(f"TYPE_{name}")
    assert dtype == np.dtype(NUMPY_OF[name]) == datatypes.numpy_dtype(name)
    assert datatypes.v2_datatype(dtype) == name
    values = np.zeros(3, dtype=dtype)
    assert datatypes.v2_datatype(values.dtype) == name


def test_v2_datatype_set_is_exactly_the_protocol_set():
    assert set(datatypes.V2_TO_NUMPY) == set(V2_NAMES)


@pytest.mark.parametrize("bad", ["FLOAT32", "TYPE_", "INT128", "FP8", ""])
def test_unknown_v2_datatype_is_refused(bad):
    with pytest.raises(ValueError, match="unknown V2 datatype"):
        datatypes.normalise_datatype(bad)


def test_model_outputs_encode_as_the_template_datatypes(model, reference_inputs):
    flag, metric = model.predict_with_score(_take(reference_inputs, [0, 4]))
    assert datatypes.v2_datatype(flag.dtype) == "BOOL"
    assert datatypes.v2_datatype(metric.dtype) == "FP32"
    assert datatypes.numpy_dtype("TYPE_INT32") == reference_inputs["BPix1"].dtype
