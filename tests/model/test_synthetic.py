"""Fast checks of the synthetic BPix data generator and anomaly injectors."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from pixelnmf.geometry import BPIX_LAYERS, CROSS_COLUMNS, MODULE_SHAPE, layer_by_name
from pixelnmf_train import synthetic as syn

LAYERS = [g.name for g in BPIX_LAYERS]


@pytest.fixture(scope="module")
def run():
    return syn.generate_run(n_ls=6, seed=1)


def _cross(geometry):
    mask = np.zeros(geometry.shape, dtype=bool)
    mask[geometry.cross_rows, :] = True
    mask[:, CROSS_COLUMNS] = True
    return mask


def test_shapes_and_dtypes(run):
    assert run.pileup.shape == (6,) and run.pileup.dtype == np.float64
    for g in BPIX_LAYERS:
        assert run.maps[g.name].shape == (6, *g.shape)
        assert run.maps[g.name].dtype == np.int32
        assert run.expected[g.name].shape == (6, *g.shape)
        assert run.expected[g.name].dtype == np.float64
        assert run.conditions.dead[g.name].shape == g.shape
        assert run.conditions.dead[g.name].dtype == bool


def test_cross_is_zero(run):
    for g in BPIX_LAYERS:
        assert not run.maps[g.name][:, _cross(g)].any()
        assert not run.expected[g.name][:, _cross(g)].any()


def test_dead_bins_zero_and_in_module_units(run):
    for g in BPIX_LAYERS:
        dead = run.conditions.dead[g.name]
        assert not (dead & _cross(g)).any()
        # 1-2 dead modules (16 bins) + 1-3 dead ROCs (1x8) per layer
        assert 16 + 8 <= dead.sum() <= 2 * 16 + 3 * 8
        assert dead.sum() % MODULE_SHAPE[1] == 0
        assert not run.maps[g.name][:, dead].any()
        assert not run.expected[g.name][:, dead].any()
        live = run.conditions.live_mask(g.name)
        assert (run.expected[g.name][:, live] > 0).all()


def test_default_conditions_shared_and_deterministic(run):
    a, b = syn.default_conditions(), syn.default_conditions()
    for name in LAYERS:
        np.testing.assert_array_equal(a.dead[name], b.dead[name])
        np.testing.assert_array_equal(a.dead[name], run.conditions.dead[name])


def test_determinism_per_seed():
    a = syn.generate_run(n_ls=3, seed=7)
    b = syn.generate_run(n_ls=3, seed=7)
    c = syn.generate_run(n_ls=3, seed=8)
    np.testing.assert_array_equal(a.pileup, b.pileup)
    for name in LAYERS:
        np.testing.assert_array_equal(a.maps[name], b.maps[name])
        assert not np.array_equal(a.maps[name], c.maps[name])


def test_pileup_profile_levelled_then_decaying():
    pu = syn.pileup_profile(750, np.random.default_rng(3))
    assert pu.shape == (750,)
    assert abs(np.median(pu[:200]) - 62) < 3
    assert np.median(pu[-50:]) < 0.8 * np.median(pu[:200])
    rel = np.diff(pu[:200]) / pu[:199]
    assert 0.005 < rel.std() < 0.1  # a few percent jitter per LS


@pytest.mark.parametrize("target", sorted(syn.MEAN_COUNTS_AT_PILEUP_60.items()))
def test_mean_occupancy_at_pileup_60(target):
    name, mean60 = target
    cond = syn.default_conditions()
    rng = np.random.default_rng(0)
    expected = syn.expected_occupancy(np.full(8, 60.0), cond, rng)
    live = cond.live_mask(name)
    counts = rng.poisson(expected[name])
    assert abs(counts[:, live].mean() / mean60 - 1) < 0.10
    # proportional to pileup
    half = syn.expected_occupancy(np.full(8, 30.0), cond, np.random.default_rng(0))
    np.testing.assert_allclose(half[name], expected[name] / 2)
    # falls with |z|: central module columns above the outermost ones
    g = layer_by_name(name)
    profile = expected[name][:, :, g.kept_columns].sum(axis=(0, 1))
    assert profile[28:36].mean() > profile[:8].mean() and profile[28:36].mean() > profile[-8:].mean()


def test_inject_dead_region_exact(run):
    before = {k: v.copy() for k, v in run.maps.items()}
    out = syn.inject_region(run.maps, ["BPix1", "BPix3"], phi=0.3, module_column=2, factor=0.0)
    for name in LAYERS:
        np.testing.assert_array_equal(run.maps[name], before[name])  # input untouched
        assert out[name] is not run.maps[name]
        mask = syn.region_mask(name, 0.3, 2)
        assert mask.sum() == 2 * 16
        if name in ("BPix1", "BPix3"):
            assert not out[name][:, mask].any()
            np.testing.assert_array_equal(out[name][:, ~mask], before[name][:, ~mask])
        else:
            np.testing.assert_array_equal(out[name], before[name])


def test_region_columns_skip_cross():
    mask = syn.region_mask("BPix2", 0.5, module_column=3, n_modules_z=2)
    cols = np.flatnonzero(mask.any(axis=0))
    np.testing.assert_array_equal(cols, np.r_[24:32, 40:48])
    small = syn.region_mask("BPix2", 0.5, module_column=3, rows=1, columns=4)
    assert small.sum() == 4 and np.flatnonzero(small.any(axis=0)).tolist() == [24, 25, 26, 27]


def test_inject_hot_and_inefficient(run):
    mask = syn.region_mask("BPix4", 0.7, 5)
    base = run.maps["BPix4"][:, mask].sum()
    hot = syn.inject_region(run.maps, ["BPix4"], 0.7, 5, factor=3.0, rng=np.random.default_rng(1))
    ineff = syn.inject_region(run.maps, ["BPix4"], 0.7, 5, factor=0.5, rng=np.random.default_rng(1))
    assert hot["BPix4"].dtype == np.int32 and ineff["BPix4"].dtype == np.int32
    assert abs(hot["BPix4"][:, mask].sum() / base - 3) < 0.05
    assert abs(ineff["BPix4"][:, mask].sum() / base - 0.5) < 0.05


def _bpix1_rows(name, mask):
    """Rows of BPix1's reduced grid touched by the region's row-fraction interval."""
    g = layer_by_name(name)
    rows = np.flatnonzero(mask[g.kept_rows].any(axis=1))
    n = g.reduced_shape[0]
    lo, hi = rows.min() / n, (rows.max() + 1) / n
    n1 = BPIX_LAYERS[0].reduced_shape[0]
    return set(range(math.floor(lo * n1), math.ceil(hi * n1)))


@pytest.mark.parametrize("shape", [dict(), dict(rows=1, columns=4), dict(rows=3, columns=8)])
def test_same_phi_overlaps_on_bpix1_grid(shape):
    for phi in np.linspace(0, 1, 97, endpoint=False):
        touched = [_bpix1_rows(name, syn.region_mask(name, float(phi), 1, **shape)) for name in LAYERS]
        common = set.intersection(*touched)
        assert common, (phi, touched)


def test_low_entries_below_min_entries(run):
    out = syn.make_low_entries(run.maps, rng=np.random.default_rng(2))
    for g in BPIX_LAYERS:
        totals = out[g.name].reshape(out[g.name].shape[0], -1).sum(axis=1)
        assert (totals < 0.5 * g.min_entries).all()
        assert (run.maps[g.name].reshape(6, -1).sum(axis=1) > g.min_entries).all()
        assert out[g.name].dtype == np.int32


def test_reference_batch_contents_and_roundtrip():
    batch = syn.make_reference_batch(seed=5, n_per_kind=2)
    n = 2 * len(syn.ANOMALY_KINDS)
    assert set(batch) == set(LAYERS) | {"expected_flag", "kind", "pileup"}
    for g in BPIX_LAYERS:
        assert batch[g.name].shape == (n, *g.shape) and batch[g.name].dtype == np.int32
    assert batch["kind"].dtype.kind == "U" and batch["kind"].shape == (n,)
    assert batch["expected_flag"].dtype == bool and batch["pileup"].dtype == np.float64
    assert set(batch["kind"].tolist()) == set(syn.ANOMALY_KINDS)
    for kind, flag in zip(batch["kind"], batch["expected_flag"], strict=True):
        assert syn.EXPECTED_FLAG[str(kind)] == flag
    assert sum(syn.EXPECTED_FLAG.values()) == 4 and syn.EXPECTED_FLAG["dead_2x16_three_layers"]

    low = np.char.startswith(batch["kind"], "low_entries")
    cond = syn.default_conditions()
    for g in BPIX_LAYERS:
        totals = batch[g.name].reshape(n, -1).sum(axis=1)
        assert (totals[low] < g.min_entries).all() and (totals[~low] > g.min_entries).all()
        assert not batch[g.name][:, cond.dead[g.name]].any()
        assert not batch[g.name][:, _cross(g)].any()
    assert (batch["pileup"][~low] >= 40).all() and (batch["pileup"] <= 65).all()

    buffer = io.BytesIO()
    np.savez(buffer, **batch)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:
        for key, value in batch.items():
            np.testing.assert_array_equal(loaded[key], value)

    again = syn.make_reference_batch(seed=5, n_per_kind=2)
    for key in batch:
        np.testing.assert_array_equal(again[key], batch[key])


def test_reference_batch_injected_regions_are_visible():
    batch = syn.make_reference_batch(seed=1, n_per_kind=1)
    clean_fraction = {}
    for i, kind in enumerate(batch["kind"]):
        zero = {g.name: int((batch[g.name][i] == 0).sum() - _cross(g).sum()) for g in BPIX_LAYERS}
        clean_fraction[str(kind)] = zero
    dead_extra = {
        kind: sum(v - syn.default_conditions().dead[name].sum() for name, v in zeros.items())
        for kind, zeros in clean_fraction.items()
    }
    assert dead_extra["clean"] == 0
    assert dead_extra["dead_2x16_two_layers"] == 2 * 32
    assert dead_extra["dead_2x16_three_layers"] == 3 * 32
    assert dead_extra["dead_2x16_one_layer"] == 32
    assert dead_extra["dead_module_2x8_two_layers"] == 2 * 16
    assert dead_extra["dead_2x16_two_layers_different_places"] == 2 * 32
