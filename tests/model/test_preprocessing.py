"""Stage 1 known answers: cross removal, normalisation by the reference, what the NMF sees.

Every expectation is written out by hand or computed here from the model's definition (docs/model.md)
(stage 1 and the start of stage 2), never by the functions under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from pixelnmf import preprocessing
from pixelnmf.geometry import BPIX_LAYERS

#: The geometry (docs/model.md): rows per layer, the two middle rows of the cross, and the reduced shape.
LAYER_FACTS = {
    "BPix1": (26, (12, 13), (24, 64)),
    "BPix2": (58, (28, 29), (56, 64)),
    "BPix3": (90, (44, 45), (88, 64)),
    "BPix4": (130, (64, 65), (128, 64)),
}
CROSS_COLUMNS = tuple(range(32, 40))


def _self_describing_maps(n_rows: int, n_ls: int = 2) -> np.ndarray:
    """Bin (r, c) of LS n holds 1000000 * n + 1000 * r + c: each value names its own position."""
    ls, rows, columns = np.meshgrid(np.arange(n_ls), np.arange(n_rows), np.arange(72), indexing="ij")
    return (1_000_000 * ls + 1000 * rows + columns).astype(np.int32)


@pytest.mark.parametrize("name", list(LAYER_FACTS))
def test_remove_cross_drops_exactly_the_middle_rows_and_columns(model, name):
    n_rows, cross_rows, reduced_shape = LAYER_FACTS[name]
    layer = next(layer for layer in model.layers if layer["name"] == name)
    assert layer["shape"] == (n_rows, 72)
    reduced = preprocessing.remove_cross(_self_describing_maps(n_rows), layer["kept_rows"], layer["kept_columns"])
    assert reduced.shape == (2, *reduced_shape)
    ls, rest = np.divmod(reduced, 1_000_000)
    rows, columns = np.divmod(rest, 1000)
    expected_rows = [r for r in range(n_rows) if r not in cross_rows]
    expected_columns = [c for c in range(72) if c not in CROSS_COLUMNS]
    assert (ls == np.array([0, 1])[:, None, None]).all(), "lumisections were mixed"
    assert (rows == np.array(expected_rows)[None, :, None]).all()
    assert (columns == np.array(expected_columns)[None, None, :]).all()


@pytest.mark.parametrize("geometry", BPIX_LAYERS, ids=lambda g: g.name)
def test_geometry_cross_matches_the_layer_facts(geometry):
    n_rows, cross_rows, reduced_shape = LAYER_FACTS[geometry.name]
    assert geometry.shape == (n_rows, 72)
    assert geometry.reduced_shape == reduced_shape
    assert tuple(range(n_rows)[geometry.cross_rows]) == cross_rows
    assert list(geometry.kept_rows) == [r for r in range(n_rows) if r not in cross_rows]
    assert list(geometry.kept_columns) == [c for c in range(72) if c not in CROSS_COLUMNS]


def test_remove_cross_keeps_the_reference_batch_counts_outside_the_cross(model, reference_batch):
    """The synthetic cross is empty, so removing it must keep every count."""
    for layer in model.layers:
        maps = reference_batch[layer["name"]][:3]
        reduced = preprocessing.remove_cross(maps, layer["kept_rows"], layer["kept_columns"])
        assert reduced.dtype == maps.dtype
        assert (reduced.sum(axis=(1, 2)) == maps.sum(axis=(1, 2))).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normalise_hand_example(dtype):
    # ratio = [[2, 2, 0], [2, 0 (reference 0), -3 -> 0]]; three non-zero bins of mean 2.
    reduced = np.array([[[2, 4, 0], [6, 5, -3]]])
    reference = np.array([[1.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    result = preprocessing.normalise(reduced, reference, dtype=dtype)
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, [[[1, 1, 0], [1, 0, 0]]])


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_normalise_gives_unit_mean_of_nonzero_bins_and_zero_where_reference_is_zero(dtype, rtol):
    rng = np.random.default_rng(11)
    reference = rng.uniform(500, 5000, size=(24, 64))
    reference[rng.random(reference.shape) < 0.05] = 0.0
    counts = rng.poisson(3000, size=(5, 24, 64)).astype(np.int32)
    counts[:, :2, :16] = 0  # a dead region
    counts[4] = 0  # an empty map stays empty
    result = preprocessing.normalise(counts, reference, dtype=dtype)

    assert result.dtype == dtype and result.shape == counts.shape
    assert (result[:, reference == 0] == 0).all()
    assert (result[:, :2, :16] == 0).all()
    assert (result[4] == 0).all()
    for ls in range(4):
        nonzero = result[ls][result[ls] != 0]
        assert nonzero.size == np.count_nonzero((counts[ls] > 0) & (reference > 0))
        assert nonzero.astype(np.float64).mean() == pytest.approx(1.0, rel=rtol)
        # Proportional to counts / reference, computed here in float64.
        ratio = np.where(reference > 0, counts[ls] / np.where(reference > 0, reference, 1.0), 0.0)
        expected = ratio / ratio[ratio > 0].mean()
        np.testing.assert_allclose(result[ls], expected, rtol=rtol, atol=0)


def test_normalise_is_invariant_to_a_global_scale_of_the_counts():
    rng = np.random.default_rng(5)
    reference = rng.uniform(500, 5000, size=(8, 16))
    counts = rng.poisson(2000, size=(3, 8, 16))
    np.testing.assert_allclose(
        preprocessing.normalise(3 * counts, reference), preprocessing.normalise(counts, reference), rtol=1e-12
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transform_input_clips_sets_zeros_to_one_and_nan_to_zero(dtype):
    values = np.array([[0.0, 0.5, 1.0, 4.999, 5.0, 5.0001, 7.0, 1e30, np.inf, np.nan, 1e-30]], dtype=dtype)
    expected = np.array([[1.0, 0.5, 1.0, 4.999, 5.0, 5.0, 5.0, 5.0, 5.0, 0.0, 1e-30]], dtype=dtype)
    before = values.copy()
    prepared = preprocessing.transform_input(values, 5.0)
    assert prepared.dtype == dtype
    np.testing.assert_array_equal(prepared, expected)
    np.testing.assert_array_equal(values, before, err_msg="transform_input modified its input")


def test_transform_input_uses_the_clip_it_is_given():
    prepared = preprocessing.transform_input(np.array([[0.0, 2.5, 3.0, 9.0]]), 2.5)
    np.testing.assert_array_equal(prepared, [[1.0, 2.5, 2.5, 2.5]])


def test_model_references_have_zeros_exactly_where_the_bins_are_always_empty(model):
    """Reference-zero bins must be the ones empty in every training LS (zero_fraction 1)."""
    for layer in model.layers:
        reduced_shape = (len(layer["kept_rows"]), len(layer["kept_columns"]))
        assert layer["reference"].shape == reduced_shape and layer["zero_fraction"].shape == reduced_shape
        assert (layer["reference"] >= 0).all()
        np.testing.assert_array_equal(layer["reference"] == 0, layer["zero_fraction"] == 1.0)


@pytest.mark.parametrize("shape", [(3, 8192), (2, 64 * 24), (2, 64 * 88), (4, 12), (0, 64), (1, 255 * 8 * 3), (1, 8 * 257)])
def test_count_per_row_equals_count_nonzero(shape):
    flags = np.random.default_rng(sum(shape)).uniform(size=shape) < 0.7
    flags[:, : shape[1] // 3] = True  # long runs of set flags: no byte may overflow
    np.testing.assert_array_equal(preprocessing.count_per_row(flags), np.count_nonzero(flags, axis=1))


def test_fused_prepare_equals_the_separate_stages(model, reference_inputs):
    for layer in model.layers:
        raw = np.asarray(reference_inputs[layer["name"]])
        reduced = preprocessing.remove_cross(raw, layer["kept_rows"], layer["kept_columns"])
        expected = preprocessing.normalise(reduced, layer["reference"], dtype=np.float32).reshape(len(raw), -1)
        index = preprocessing.flat_index(layer["kept_rows"], layer["kept_columns"], layer["shape"][1])
        got, prepared = preprocessing.prepare(
            raw.reshape(len(raw), -1), index, preprocessing.inverse_reference(layer["reference"]), 5.0
        )
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
        np.testing.assert_array_equal(prepared, preprocessing.transform_input(got, 5.0))
