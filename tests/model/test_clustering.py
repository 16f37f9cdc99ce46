"""Stage 3 known answers: loss = squared difference; binarise at loss > 0.04; keep only 2x16
windows with at most one bin at or below the threshold, and set every bin of such a window.

The hand-made loss maps are 8 x 40 (two LS per case where useful); expectations are written
as explicit rectangles.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pixelnmf import clustering

THRESHOLD, WINDOW, MAX_MISSES = 0.04, (2, 16), 1
HIGH = 1.0


def _cluster(loss: np.ndarray) -> np.ndarray:
    return clustering.cluster_loss(loss[None], THRESHOLD, WINDOW, MAX_MISSES)[0]


def _block(rows: slice, columns: slice, shape=(8, 40)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[rows, columns] = True
    return mask


def test_model_uses_the_documented_clustering_parameters(model):
    assert model.parameters["loss_threshold"] == THRESHOLD
    assert tuple(model.parameters["window"]) == WINDOW
    assert model.parameters["max_misses"] == MAX_MISSES


def test_loss_map_is_the_squared_difference():
    preprocessed = np.array([[[1.0, 0.0, 2.5]]])
    reconstruction = np.array([[[0.8, 1.0, 0.5]]])
    np.testing.assert_allclose(clustering.loss_map(preprocessed, reconstruction), [[[0.04, 1.0, 4.0]]])


def test_full_2x16_block_survives_whole():
    block = _block(slice(2, 4), slice(10, 26))
    np.testing.assert_array_equal(_cluster(np.where(block, HIGH, 0.0)), block)


def test_2x16_block_with_one_miss_survives_whole_and_the_missing_bin_is_set():
    block = _block(slice(2, 4), slice(10, 26))
    loss = np.where(block, HIGH, 0.0)
    loss[3, 17] = 0.0
    clustered = _cluster(loss)
    np.testing.assert_array_equal(clustered, block)
    assert clustered[3, 17]


def test_2x16_block_with_two_misses_does_not_survive():
    loss = np.where(_block(slice(2, 4), slice(10, 26)), HIGH, 0.0)
    loss[2, 12] = loss[3, 20] = 0.0
    assert not _cluster(loss).any()


def test_2x15_block_does_not_survive():
    assert not _cluster(np.where(_block(slice(2, 4), slice(10, 25)), HIGH, 0.0)).any()


def test_1x16_and_isolated_bins_do_not_survive():
    loss = np.where(_block(slice(0, 1), slice(0, 16)), HIGH, 0.0)
    loss[5, 30] = HIGH
    loss[7, 39] = HIGH
    assert not _cluster(loss).any()


def test_threshold_is_strict():
    block = _block(slice(4, 6), slice(20, 36))
    at_threshold = np.where(block, np.float32(THRESHOLD), np.float32(0)).astype(np.float32)
    assert not _cluster(at_threshold).any()
    just_above = np.where(block, np.nextafter(np.float32(THRESHOLD), np.float32(1)), np.float32(0)).astype(np.float32)
    np.testing.assert_array_equal(_cluster(just_above), block)


def test_larger_blocks_survive_whole_and_each_window_is_judged_on_its_own():
    loss = np.where(_block(slice(0, 3), slice(0, 16)), HIGH, 0.0)  # 3 x 16: both windows full
    np.testing.assert_array_equal(_cluster(loss), _block(slice(0, 3), slice(0, 16)))
    # 2 x 17 with a miss at each end: every 2x16 window sees only one miss, so all 34 bins are set.
    loss = np.where(_block(slice(5, 7), slice(20, 37)), HIGH, 0.0)
    loss[5, 20] = loss[6, 36] = 0.0
    np.testing.assert_array_equal(_cluster(loss), _block(slice(5, 7), slice(20, 37)))


def test_block_at_the_map_edges_survives():
    block = _block(slice(6, 8), slice(24, 40))
    loss = np.where(block, HIGH, 0.0)
    loss[7, 39] = 0.0
    np.testing.assert_array_equal(_cluster(loss), block)


def test_lumisections_are_clustered_independently():
    first = np.where(_block(slice(0, 2), slice(0, 16)), HIGH, 0.0)
    second = np.where(_block(slice(0, 2), slice(0, 15)), HIGH, 0.0)
    clustered = clustering.cluster_loss(np.stack([first, second, np.zeros((8, 40))]), THRESHOLD, WINDOW, MAX_MISSES)
    np.testing.assert_array_equal(
        clustered, np.stack([_block(slice(0, 2), slice(0, 16)), np.zeros((8, 40), bool), np.zeros((8, 40), bool)])
    )


def _brute_force(binary: np.ndarray) -> np.ndarray:
    """Straight from the definition, with Python loops over every window position."""
    n_rows, n_columns = binary.shape
    height, width = WINDOW
    out = np.zeros_like(binary)
    for r in range(n_rows - height + 1):
        for c in range(n_columns - width + 1):
            if height * width - int(binary[r : r + height, c : c + width].sum()) <= MAX_MISSES:
                out[r : r + height, c : c + width] = True
    return out


@pytest.mark.parametrize("density", [0.9, 0.97])
def test_random_maps_match_a_brute_force_window_scan(density):
    rng = np.random.default_rng(int(density * 100))
    loss = rng.random((4, 10, 40)) * (rng.random((4, 10, 40)) < density)
    loss[1, 2:4, 5:21] = HIGH  # at least one sure window
    clustered = clustering.cluster_loss(loss, THRESHOLD, WINDOW, MAX_MISSES)
    for ls in range(len(loss)):
        np.testing.assert_array_equal(clustered[ls], _brute_force(loss[ls] > THRESHOLD))
    assert clustered.any() and not clustered.all()


@settings(max_examples=200, deadline=None)
@given(
    n_ls=st.integers(0, 3),
    n_rows=st.integers(1, 30),
    n_columns=st.integers(1, 64),
    height=st.integers(1, 3),
    width=st.integers(1, 20),
    max_misses=st.integers(0, 2),
    density=st.floats(0.3, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_bit_packed_clustering_equals_the_reference(n_ls, n_rows, n_columns, height, width, max_misses, density, seed):
    loss = (np.random.default_rng(seed).uniform(size=(n_ls, n_rows, n_columns)) < density).astype(np.float32)
    expected = clustering.cluster_loss(loss, 0.5, (height, width), max_misses)
    np.testing.assert_array_equal(clustering.cluster_loss_packed(loss, 0.5, (height, width), max_misses), expected)


def test_pack_and_unpack_rows_round_trip():
    binary = np.random.default_rng(3).uniform(size=(2, 5, 37)) < 0.5
    words = clustering.pack_rows(binary)
    assert words.dtype == np.uint64 and words.shape == (2, 5)
    assert int(words[0, 0]) == sum(1 << j for j in range(37) if binary[0, 0, j])
    np.testing.assert_array_equal(clustering.unpack_rows(words, 37), binary)
