"""Minimum-entries filter: an LS is evaluated only when every layer's total is strictly above
0.5e6 / layer number; a filtered LS gets flag False and metric 0 whatever its maps show."""

from __future__ import annotations

import numpy as np
import pytest
from pixelnmf import entries

MIN_ENTRIES = {"BPix1": 500_000, "BPix2": 250_000, "BPix3": 500_000 / 3, "BPix4": 125_000}
LOW_WITH_DEAD = "low_entries_with_dead_2x16_two_layers"


def _with_total(one_map: np.ndarray, total: int) -> np.ndarray:
    """The map scaled down to integer counts summing to exactly ``total`` (same shape of occupancy)."""
    scaled = np.floor(one_map.astype(np.float64) * total / one_map.sum()).astype(np.int64)
    live = np.flatnonzero(scaled.ravel())
    scaled.ravel()[live[: total - scaled.sum()]] += 1
    assert scaled.sum() == total
    return scaled.astype(one_map.dtype)


def test_model_minimum_entries_are_half_a_million_over_the_layer_number(model):
    for layer in model.layers:
        assert layer["min_entries"] == pytest.approx(MIN_ENTRIES[layer["name"]], rel=1e-15)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.float64])
def test_a_total_equal_to_the_minimum_is_not_enough_one_more_is(dtype):
    equal = np.full((1, 10, 10), 5000, dtype=dtype)  # total 500000
    one_more = equal.copy()
    one_more[0, 0, 0] += 1  # total 500001
    assert entries.has_enough_entries([equal], [500_000.0]).tolist() == [False]
    assert entries.has_enough_entries([one_more], [500_000.0]).tolist() == [True]
    # Every layer must pass.
    assert entries.has_enough_entries([one_more, equal], [500_000.0, 500_000.0]).tolist() == [False]
    assert entries.has_enough_entries([one_more, one_more], [500_000.0, 500_000.0]).tolist() == [True]


def test_bpix3_cut_lies_between_166666_and_166667():
    totals = np.zeros((2, 1, 1), dtype=np.int32)
    totals[0, 0, 0], totals[1, 0, 0] = 166_666, 166_667
    assert entries.has_enough_entries([totals], [500_000 / 3]).tolist() == [False, True]


#: Per layer, the largest total that is not enough and the smallest that is.
AT_THE_CUT = {"BPix1": (500_000, 500_001), "BPix2": (250_000, 250_001), "BPix3": (166_666, 166_667), "BPix4": (125_000, 125_001)}


@pytest.mark.parametrize("name", ["BPix1", "BPix2", "BPix3", "BPix4"])
def test_model_does_not_evaluate_an_ls_whose_total_equals_the_minimum(model, reference_batch, reference_inputs, name):
    """Two copies of an anomalous LS, one layer scaled to exactly the cut and to one count more."""
    anomalous = int(np.flatnonzero(reference_batch["kind"] == "dead_2x16_two_layers")[0])
    not_enough, enough = AT_THE_CUT[name]
    at_cut = {key: np.array(value[[anomalous, anomalous]]) for key, value in reference_inputs.items()}
    at_cut[name][0] = _with_total(at_cut[name][0], not_enough)
    at_cut[name][1] = _with_total(at_cut[name][1], enough)
    result = model.evaluate(at_cut)
    assert result.evaluated.tolist() == [False, True]
    assert result.flag.tolist() == [False, True]
    assert result.metric[0] == 0.0 and result.metric[1] > 0


def test_a_filtered_anomalous_ls_has_flag_false_and_metric_zero(model, reference_batch, reference_inputs):
    rows = np.flatnonzero(reference_batch["kind"] == LOW_WITH_DEAD)
    assert len(rows) >= 1
    low = {key: value[rows] for key, value in reference_inputs.items()}
    result = model.evaluate(low, keep_intermediates=True)
    assert not result.evaluated.any()
    assert not result.flag.any()
    assert (result.metric == 0).all() and result.metric.dtype == np.float32
    assert not result.combined.any()
    # The anomaly is there: with four times the counts the same LS pass the filter and are flagged.
    boosted = model.evaluate({key: value * 4 for key, value in low.items()})
    assert boosted.evaluated.all()
    assert boosted.flag.all() and (boosted.metric > 0).all()


def test_int32_totals_with_a_bound_are_exact_and_large_counts_fall_back_to_int64():
    from pixelnmf.entries import _totals

    small = np.full((2, 10, 10), 1000, dtype=np.int32)
    assert _totals(small, upper_bound=1023).tolist() == [100_000, 100_000]
    large = np.full((1, 10, 10), 2**30, dtype=np.int32)
    assert _totals(large, upper_bound=2**30).tolist() == [100 * 2**30]  # would wrap in int32
