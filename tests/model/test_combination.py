"""Stage 4 known answers: the any-overlap rebinning onto the first layer's grid and the
agreement rule (at least two layers, and more layers than the loss mask)."""

from __future__ import annotations

from fractions import Fraction
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pixelnmf import combination

GRID = (24, 64)


def _rows(values) -> np.ndarray:
    """A (1, R, 1) bool batch from a list of row values."""
    return np.array(values, dtype=bool)[None, :, None]


@pytest.mark.parametrize(
    "source, target",
    [
        # 4 rows onto 2: each target row covers exactly two source rows; touching edges do not overlap.
        ([1, 0, 0, 0], [1, 0]),
        ([0, 1, 0, 0], [1, 0]),
        ([0, 0, 1, 0], [0, 1]),
        ([0, 0, 0, 1], [0, 1]),
        # 3 rows onto 2: the middle source row [1/3, 2/3) overlaps both target rows.
        ([1, 0, 0], [1, 0]),
        ([0, 1, 0], [1, 1]),
        ([0, 0, 1], [0, 1]),
        # 5 onto 2: source row 2 = [0.4, 0.6) straddles 0.5.
        ([0, 0, 1, 0, 0], [1, 1]),
        ([0, 1, 0, 0, 0], [1, 0]),
        ([0, 0, 0, 0, 0], [0, 0]),
        # 2 onto 3 (finer target): target row 1 = [1/3, 2/3) overlaps both source rows.
        ([1, 0], [1, 1, 0]),
        ([0, 1], [0, 1, 1]),
    ],
)
def test_to_grid_any_overlap_hand_examples(source, target):
    rebinned = combination.to_grid(_rows(source), (len(target), 1))
    np.testing.assert_array_equal(rebinned, _rows(target))


def test_to_grid_columns_and_rows_together():
    source = np.zeros((1, 4, 6), dtype=bool)
    source[0, 1, 3] = True  # row [1/4, 2/4) -> target row 0 of 2; column [3/6, 4/6) -> target column 1 of 3
    expected = np.zeros((1, 2, 3), dtype=bool)
    expected[0, 0, 1] = True
    np.testing.assert_array_equal(combination.to_grid(source, (2, 3)), expected)


@cache
def _overlapping(n_target: int, n_source: int) -> tuple[tuple[int, ...], ...]:
    """Per target bin i of [0, 1) cut in n_target, the source bins overlapping it with positive length."""
    result = []
    for i in range(n_target):
        lo, hi = Fraction(i, n_target), Fraction(i + 1, n_target)
        result.append(
            tuple(j for j in range(n_source) if min(hi, Fraction(j + 1, n_source)) - max(lo, Fraction(j, n_source)) > 0)
        )
    return tuple(result)


def _brute_force_to_grid(binary: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Exact interval arithmetic with Fractions: target bin set if a set source bin overlaps it."""
    rows = _overlapping(shape[0], binary.shape[1])
    columns = _overlapping(shape[1], binary.shape[2])
    out = np.zeros((binary.shape[0], *shape), dtype=bool)
    for i, source_rows in enumerate(rows):
        for j, source_columns in enumerate(columns):
            out[:, i, j] = binary[:, list(source_rows)][:, :, list(source_columns)].any(axis=(1, 2))
    return out


@pytest.mark.parametrize("n_rows", [24, 56, 88, 128])
def test_to_grid_matches_exact_interval_arithmetic_for_the_layer_shapes(n_rows):
    rng = np.random.default_rng(n_rows)
    binary = rng.random((3, n_rows, 64)) < 0.03
    binary[2] = False
    binary[2, n_rows // 2 - 1 : n_rows // 2 + 1, 16:32] = True  # a 2x16 region in the middle
    np.testing.assert_array_equal(combination.to_grid(binary, GRID), _brute_force_to_grid(binary, GRID))


def _empty_layers():
    return [np.zeros((1, *GRID), dtype=bool) for _ in range(4)]


def test_one_layer_alone_never_sets_the_combined_map():
    layers = _empty_layers()
    layers[1][0] = True  # a whole layer bad
    combined = combination.combine_layers(layers, GRID, np.zeros(GRID, dtype=np.int64), 2)
    assert not combined.any()


def test_two_layers_at_the_same_place_set_the_combined_map_and_at_different_places_do_not():
    layers = _empty_layers()
    layers[0][0, 4:6, 8:24] = True
    layers[2][0, 4:6, 16:32] = True  # overlaps the first in columns 16:24
    layers[3][0, 10:12, 40:56] = True  # alone
    combined = combination.combine_layers(layers, GRID, np.zeros(GRID, dtype=np.int64), 2)
    expected = np.zeros((1, *GRID), dtype=bool)
    expected[0, 4:6, 16:24] = True
    np.testing.assert_array_equal(combined, expected)


def test_the_loss_mask_suppresses_bins_where_it_is_at_least_the_layer_count():
    layers = _empty_layers()
    for index in (0, 1):
        layers[index][0, 0:2, 0:16] = True
    layers[2][0, 0:2, 8:16] = True  # a third layer on the right half
    mask = np.zeros(GRID, dtype=np.int64)
    mask[0:2, 0:4] = 1  # two layers > 1: still set
    mask[0:2, 4:8] = 2  # two layers, mask 2: suppressed
    mask[0:2, 8:12] = 2  # three layers > 2: set
    mask[0:2, 12:16] = 3  # three layers, mask 3: suppressed
    combined = combination.combine_layers(layers, GRID, mask, 2)[0]
    expected = np.zeros(GRID, dtype=bool)
    expected[0:2, 0:4] = True
    expected[0:2, 8:12] = True
    np.testing.assert_array_equal(combined, expected)


def test_the_same_physical_region_in_two_real_layer_shapes_combines():
    """A 2x16 region in the middle ladder of BPix2 (56 rows) and BPix4 (128 rows) lands on BPix1's rows."""
    bpix2 = np.zeros((1, 56, 64), dtype=bool)
    bpix4 = np.zeros((1, 128, 64), dtype=bool)
    bpix2[0, 28:30, 16:32] = True  # rows [28/56, 30/56) = [0.5, 0.536)
    bpix4[0, 64:66, 16:32] = True  # rows [0.5, 0.516)
    combined = combination.combine_layers(
        [np.zeros((1, *GRID), bool), bpix2, np.zeros((1, 88, 64), bool), bpix4], GRID, np.zeros(GRID, np.int64), 2
    )
    expected = np.zeros((1, *GRID), dtype=bool)
    expected[0, 12, 16:32] = True  # BPix1 row 12 = [0.5, 0.542)
    np.testing.assert_array_equal(combined, expected)


def test_model_loss_mask_counts_mostly_empty_bins_per_layer(model):
    assert model.parameters["empty_fraction"] == 0.9
    assert model.parameters["min_layers"] == 2
    assert model.grid_shape == GRID
    expected = np.zeros(GRID, dtype=np.int64)
    for layer in model.layers:
        expected += _brute_force_to_grid((layer["zero_fraction"] >= 0.9)[None], GRID)[0]
    mask = model.loss_mask
    np.testing.assert_array_equal(mask, expected)
    assert mask.max() >= 1, "the synthetic detector has dead modules, so the mask is not all zero"


def test_combined_map_of_the_reference_batch_follows_from_the_clustered_layers(model, reference_evaluation):
    """Recombine the evaluation's own clustered maps with the brute-force rebinning."""
    count = sum(
        _brute_force_to_grid(reference_evaluation.layers[layer["name"]].clustered, GRID).astype(int) for layer in model.layers
    )
    expected = (count >= 2) & (count > model.loss_mask) & reference_evaluation.evaluated[:, None, None]
    np.testing.assert_array_equal(reference_evaluation.combined, expected)
    assert expected.any()


@settings(max_examples=60, deadline=None)
@given(density=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_bit_packed_combination_and_flagging_equal_the_reference(model, density, seed):
    """Random clustered maps of every layer: the packed path the model runs gives the same
    combined maps, flags and metric as combine_layers + flag_and_score."""
    from pixelnmf import clustering, flagging

    rng = np.random.default_rng(seed)
    params = model.parameters
    layers = [rng.uniform(size=(3, len(layer["kept_rows"]), len(layer["kept_columns"]))) < density for layer in model.layers]
    expected = combination.combine_layers(layers, model.grid_shape, model.loss_mask, params["min_layers"])
    required = combination.required_layers(model.loss_mask, params["min_layers"], len(layers))
    words = combination.combine_words([clustering.pack_rows(binary) for binary in layers], model.grid_shape[0], required)
    np.testing.assert_array_equal(clustering.unpack_rows(words, model.grid_shape[1]), expected)
    flag, metric = flagging.flag_and_score_words(words, model.grid_shape[1], params["flag_blocks"])
    expected_flag, expected_metric = flagging.flag_and_score(expected, params["flag_blocks"])
    np.testing.assert_array_equal(flag, expected_flag)
    np.testing.assert_array_equal(metric, expected_metric)
