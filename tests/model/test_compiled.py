"""The compiled engine (pixelnmf.compiled, numba) against the numpy stages it replaces.

The fused loop must give the numpy stages' answers: the same totals, the same loss bits except
for bins whose loss lies within rounding of the threshold (the float sums run in another order),
and the same flags, metric and evaluated mask. Checked on the reference batch, on synthetic runs
with injected anomalies, on hypothesis-drawn batches (spikes up to the INT32 maximum, dead and
hot blocks, empty maps), on the toy model (rows of 40 columns: the padded packing) and for other
numbers of components, including degenerate ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pixelnmf import InputError, PixelNMF, clustering, compiled
from pixelnmf import model as model_module
from pixelnmf_train import synthetic
from test_model import REGION, _toy_maps, _toy_model  # the toy model of test_model.py (same folder)

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
#: A bin may change sides only when its loss is this close to the threshold (float32 sums of up to
#: 8192 products in another order move the reconstruction by ~1e-6 relative; measured: no bin of
#: the reference batch or of a 750-LS synthetic run changes sides at all).
ROUNDING = 1e-5
REPOSITORY = Path(__file__).resolve().parents[2]


def test_numba_is_importable_so_the_compiled_engine_is_tested():
    assert compiled.AVAILABLE, "numba is missing: install requirements/fast.txt (the serving image ships numba)"


def _both(model, inputs):
    fast = model.evaluate(inputs, engine="compiled")
    reference = model.evaluate(inputs, engine="numpy")
    return fast, reference


def _assert_same_answers(model, inputs):
    fast, reference = _both(model, inputs)
    np.testing.assert_array_equal(fast.evaluated, reference.evaluated)
    np.testing.assert_array_equal(fast.flag, reference.flag)
    np.testing.assert_array_equal(fast.metric, reference.metric)
    assert fast.metric.dtype == np.float32 and fast.flag.dtype == np.bool_
    return fast


def _assert_loss_bits_agree(model, inputs):
    """Per layer: the fused loop's loss bits and totals against the numpy stages' loss maps."""
    kept = model.evaluate(inputs, keep_intermediates=True, engine="numpy")
    threshold = np.float32(model.parameters["loss_threshold"])
    n_changed = 0
    for layer, prepared in zip(model.layers, model._compiled_inputs, strict=True):
        raw = np.ascontiguousarray(inputs[layer["name"]], dtype=np.int32)
        n_ls = len(raw)
        n_rows, n_columns = len(layer["kept_rows"]), len(layer["kept_columns"])
        words, totals, negative = compiled.layer_loss_bits(
            raw.reshape(n_ls, -1), *prepared, model.parameters["clip"], threshold, n_rows, n_columns
        )
        np.testing.assert_array_equal(totals, raw.reshape(n_ls, -1).sum(axis=1, dtype=np.int64))
        assert not negative.any()
        loss = kept.layers[layer["name"]].loss
        bits = clustering.unpack_rows(words, n_columns)
        changed = bits != (loss > threshold)
        assert np.all(np.abs(loss[changed] - threshold) <= ROUNDING), (
            f"{layer['name']}: {changed.sum()} bins differ, the farthest at loss "
            f"{loss[changed][np.argmax(np.abs(loss[changed] - threshold))]} (threshold {threshold})"
        )
        n_changed += int(changed.sum())
    return n_changed


def test_reference_batch_same_answers_from_both_engines(model, reference_inputs, reference_batch):
    fast = _assert_same_answers(model, reference_inputs)
    np.testing.assert_array_equal(fast.flag, reference_batch["expected_flag"])
    assert _assert_loss_bits_agree(model, reference_inputs) == 0


def test_reference_batch_2025f_same_answers_from_both_engines(model_2025f_and_inputs):
    model_2025f, inputs = model_2025f_and_inputs
    fast = _assert_same_answers(model_2025f, inputs)
    assert fast.flag.any() and not fast.evaluated.all(), "the batch has flagged and filtered LS"


@pytest.fixture(scope="module")
def model_2025f_and_inputs():
    import joblib

    model_2025f = joblib.load(REPOSITORY / "models" / "pixelnmf-2025f.joblib")
    with np.load(REPOSITORY / "tests" / "data" / "reference_batch_2025f.npz", allow_pickle=False) as archive:
        inputs = {name: archive[name] for name in [*model_2025f.input_names, *model_2025f.metadata_inputs]}
    return model_2025f, inputs


@pytest.mark.parametrize("factor", [0.0, 0.4, 3.0], ids=["dead", "inefficient", "hot"])
def test_synthetic_run_with_an_anomaly_same_answers_and_loss_bits(model, factor):
    run = synthetic.generate_run(60, seed=4243, conditions=synthetic.default_conditions())
    injected = synthetic.inject_region(run.maps, ["BPix2", "BPix3"], 0.37, 2, n_modules_z=2, factor=factor)
    injected = {name: np.ascontiguousarray(maps) for name, maps in injected.items()}
    _assert_same_answers(model, injected)
    _assert_loss_bits_agree(model, injected)


@st.composite
def int32_batches(draw, model, reference_inputs):
    """A few reference LS per layer, each kept, zeroed, spiked (up to INT32 max) or with a
    dead or hot block of bins."""
    n = draw(st.integers(1, 4), label="n")
    rows = np.asarray(draw(st.lists(st.integers(0, 39), min_size=n, max_size=n), label="rows"))
    inputs = {}
    for name, shape in model.input_shapes.items():
        maps = np.array(reference_inputs[name][rows], dtype=np.int32)
        for ls in range(n):
            mode = draw(st.sampled_from(["keep", "zeros", "spikes", "dead", "hot"]), label=f"{name}[{ls}]")
            r, c = draw(st.integers(0, shape[0] - 2)), draw(st.integers(0, shape[1] - 16))
            if mode == "zeros":
                maps[ls] = 0
            elif mode == "spikes":
                maps[ls, r, c] = draw(st.sampled_from([1, 2**20, 2**31 - 1]))
            elif mode == "dead":
                maps[ls, r : r + 2, c : c + 16] = 0
            elif mode == "hot":
                maps[ls, r : r + 2, c : c + 16] *= 4
        inputs[name] = maps
    return inputs


@SETTINGS
@given(data=st.data())
def test_drawn_batches_same_answers_and_loss_bits(model, reference_inputs, data):
    inputs = data.draw(int32_batches(model, reference_inputs))
    _assert_same_answers(model, inputs)
    _assert_loss_bits_agree(model, inputs)


def test_toy_model_padded_rows_and_one_component(model):
    """40 columns per row: the packing goes through rows padded to whole bytes."""
    toy = _toy_model(min_entries=10.0)
    for maps in (_toy_maps(REGION, REGION), _toy_maps(REGION, None), _toy_maps(REGION, REGION, factor=3.0), _toy_maps()):
        fast = _assert_same_answers(toy, maps)
        assert _assert_loss_bits_agree(toy, maps) == 0
    assert fast.flag.tolist() == [False]
    assert _assert_same_answers(toy, _toy_maps(REGION, REGION)).flag.tolist() == [True]


def _with_components(model: PixelNMF, make) -> PixelNMF:
    state = model.__getstate__()
    layers = [{**layer, "components": make(layer["components"])} for layer in state["layers"]]
    return PixelNMF(layers, **state["parameters"])


@pytest.mark.parametrize(
    ("label", "make"),
    [
        ("1 component", lambda h: h[:1]),
        ("3 components", lambda h: h[:3]),
        ("a repeated component: no full face", lambda h: np.concatenate([h[:3], h[:1]])),
    ],
)
def test_other_component_sets_same_answers_and_loss_bits(model, reference_inputs, label, make):
    other = _with_components(model, make)
    if label.startswith("a repeated"):
        assert other._solvers[0].full_face == -1, "the degenerate full face is dropped"
    else:
        assert other._solvers[0].full_face == len(other._solvers[0]._inverses) - 1
    _assert_same_answers(other, reference_inputs)
    _assert_loss_bits_agree(other, reference_inputs)


def test_negative_count_is_an_input_error_naming_the_layer(model, reference_inputs):
    inputs = {name: np.array(maps[:3]) for name, maps in reference_inputs.items()}
    inputs["BPix3"][1, 5, 7] = -1
    with pytest.raises(InputError, match="'BPix3'.*non-negative"):
        model.evaluate(inputs, engine="compiled")


def test_empty_batch(model):
    empty = {name: np.zeros((0, *shape), dtype=np.int32) for name, shape in model.input_shapes.items()}
    result = model.evaluate(empty, engine="compiled")
    assert result.flag.shape == result.metric.shape == (0,)


def test_auto_uses_numpy_for_what_the_loop_does_not_take(model, reference_inputs):
    as_float = {name: maps[:2].astype(np.float64) for name, maps in reference_inputs.items()}
    assert "float64" in model.compiled_unavailable(as_float)
    with pytest.raises(RuntimeError, match="not int32"):
        model.evaluate(as_float, engine="compiled")
    np.testing.assert_array_equal(model.predict(as_float), model.evaluate(as_float, engine="numpy").flag)
    with pytest.raises(ValueError, match="intermediate"):
        model.evaluate(reference_inputs, keep_intermediates=True, engine="compiled")
    with pytest.raises(ValueError, match="engine 'fast' unknown"):
        model.evaluate(reference_inputs, engine="fast")


def test_without_numba_auto_runs_the_numpy_stages(model, reference_inputs, monkeypatch):
    expected = model.evaluate(reference_inputs, engine="compiled").flag
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    assert model.compiled_unavailable(reference_inputs) == "numba is not importable"
    monkeypatch.setattr(model_module.PixelNMF, "_evaluate_compiled", None)  # would raise if called
    np.testing.assert_array_equal(model.predict(reference_inputs), expected)


def test_warm_up_compiles_the_loop(model, model_2025f_and_inputs, monkeypatch):
    for each in (model, model_2025f_and_inputs[0]):
        monkeypatch.setattr(compiled, "_COMPILED", {})
        each.warm_up()  # the 2025F model: with its metadata inputs (BOOL, INT32, FP32)
        assert each.layers[0]["components"].shape[0] in compiled._COMPILED


def test_metadata_inputs_do_not_keep_the_loop_from_running(model_2025f_and_inputs):
    model_2025f, inputs = model_2025f_and_inputs
    assert model_2025f.compiled_unavailable(inputs) is None


def test_the_generated_source_has_one_accumulator_per_component():
    source = compiled.fused_loop_source(3)
    assert "b0 = zero32" in source and "b2 = zero32" in source and "b3" not in source
    assert "{k}" not in source


def test_the_loop_source_keeps_its_stamp_when_the_cache_folder_is_copied_without_it(tmp_path):
    """numba reuses a cached function only while its source file's (mtime, size) is the one it
    recorded. The gate's worker restores numba's .nbi/.nbc files alone, so the loop's source is
    written again in every new container: its stamp must come from the source, not the clock."""
    source = compiled.fused_loop_source(3)
    first = compiled._loop_source_file(tmp_path / "first", 3, source)
    stamp = (first.stat().st_mtime, first.stat().st_size)
    first.unlink()
    again = compiled._loop_source_file(tmp_path / "first", 3, source)
    elsewhere = compiled._loop_source_file(tmp_path / "elsewhere", 3, source)
    assert (again.stat().st_mtime, again.stat().st_size) == stamp
    assert (elsewhere.stat().st_mtime, elsewhere.stat().st_size) == stamp
    other = compiled._loop_source_file(tmp_path / "other", 4, compiled.fused_loop_source(4))
    assert other.stat().st_mtime != stamp[0], "another source must not look like this one to numba"


def test_more_misses_than_the_compiled_clustering_takes_runs_the_numpy_clustering(model, reference_inputs):
    state = model.__getstate__()
    lenient = PixelNMF(state["layers"], **{**state["parameters"], "max_misses": 3})
    assert compiled.MAX_MISSES_COMPILED < 3
    fast = _assert_same_answers(lenient, reference_inputs)
    assert fast.flag.sum() >= model.predict(reference_inputs).sum(), "more misses allowed: no fewer flags"


@st.composite
def packed_layers(draw):
    """Loss words of 1-3 layers (rows 2..20, 8..64 columns), a window, misses 0/1, blocks."""
    n_columns = draw(st.sampled_from([8, 40, 64]))
    n_ls = draw(st.integers(1, 5))
    rows = draw(st.lists(st.integers(2, 20), min_size=1, max_size=3))
    density = draw(st.sampled_from([0.5, 0.9, 0.97]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    words = [clustering.pack_rows(rng.random((n_ls, n, n_columns)) < density) for n in rows]
    window = (draw(st.integers(1, 3)), draw(st.integers(1, min(16, n_columns))))
    blocks = tuple((draw(st.integers(1, 2)), draw(st.integers(1, 8))) for _ in range(draw(st.integers(1, 2))))
    max_misses = draw(st.integers(0, compiled.MAX_MISSES_COMPILED))
    mask = rng.integers(0, len(rows) + 1, size=(rows[0], n_columns))
    evaluated = rng.random(n_ls) < 0.8
    return words, n_columns, window, max_misses, blocks, mask, evaluated


@SETTINGS
@given(case=packed_layers())
def test_compiled_clustering_combination_flagging_equal_the_numpy_packed_stages(case):
    """Against the numpy functions on packed rows, which test_clustering, test_combination and
    test_flagging check against brute-force scans."""
    from pixelnmf import combination, flagging

    words, n_columns, window, max_misses, blocks, mask, evaluated = case
    n_grid_rows = words[0].shape[1]
    clustered = [
        clustering.dilate_anchors(clustering.window_anchors(w, n_columns, window, max_misses), n_columns, window) for w in words
    ]
    required = combination.required_layers(mask, 2, len(words))
    combined = combination.combine_words(clustered, n_grid_rows, required)
    combined[~evaluated] = 0
    expected_flag, expected_metric = flagging.flag_and_score_words(combined, n_columns, blocks)

    sizes = [w.shape[1] for w in words]
    first_rows, last_rows = [], []
    for n_source in sizes:
        overlap = combination.overlap_matrix(n_grid_rows, n_source)
        first_rows.append(overlap.argmax(axis=1))
        last_rows.append(first_rows[-1] + overlap.sum(axis=1) - 1)
    flag, metric = compiled.cluster_combine_flag(
        np.concatenate(words, axis=1), np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), n_columns, window, max_misses,
        np.array(first_rows, dtype=np.int64), np.array(last_rows, dtype=np.int64), np.array(required, dtype=np.uint64),
        np.array(blocks, dtype=np.int64), evaluated,
    )  # fmt: skip
    np.testing.assert_array_equal(flag, expected_flag)
    np.testing.assert_array_equal(metric, expected_metric)
