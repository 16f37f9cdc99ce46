"""The whole model: the reference batch, fresh synthetic runs, and a hand-made toy model whose
every intermediate map is known in advance."""

from __future__ import annotations

import numpy as np
import pytest
from pixelnmf import DEFAULT_PARAMETERS, PixelNMF
from pixelnmf_train import synthetic

#: The model's defaults (docs/model.md).
DOCUMENTED_DEFAULTS = {
    "loss_threshold": 0.04,
    "window": (2, 16),
    "max_misses": 1,
    "clip": 5.0,
    "min_layers": 2,
    "flag_blocks": ((1, 8), (2, 4)),
    "empty_fraction": 0.9,
    # the four-layer deployment has no metadata inputs and no filters
    "metadata_inputs": {},
    "filters": (),
}
INPUT_SHAPES = {"BPix1": (26, 72), "BPix2": (58, 72), "BPix3": (90, 72), "BPix4": (130, 72)}
FRESH_RUN_SEED = 4242  # the training runs use synthetic.BASE_SEED + 0..3


def test_model_describes_its_inputs_and_parameters(model):
    assert isinstance(model, PixelNMF)
    assert model.input_names == list(INPUT_SHAPES)
    assert model.input_shapes == INPUT_SHAPES
    assert model.parameters == DOCUMENTED_DEFAULTS
    assert DEFAULT_PARAMETERS == DOCUMENTED_DEFAULTS
    assert model.grid_shape == (24, 64)


def test_reference_batch_gets_exactly_the_expected_flags(model, reference_batch, reference_inputs):
    flag, metric = model.predict_with_score(reference_inputs)
    wrong = [(i, str(reference_batch["kind"][i])) for i in np.flatnonzero(flag != reference_batch["expected_flag"])]
    assert not wrong, f"LS flagged against expectation: {wrong}"
    np.testing.assert_array_equal(model.predict(reference_inputs), flag)
    assert ((metric > 0) == flag).all()
    assert set(np.unique(reference_batch["kind"])) == set(synthetic.ANOMALY_KINDS), "every kind is in the batch"


@pytest.fixture(scope="module")
def fresh_run():
    return synthetic.generate_run(100, seed=FRESH_RUN_SEED, conditions=synthetic.default_conditions())


def _free_place(conditions, layers, n_modules_z=2):
    """The first (phi, module column) whose region misses every dead bin of the given layers."""
    for phi in np.linspace(0.01, 0.99, 50):
        for column in range(8 - n_modules_z + 1):
            if not any(
                (synthetic.region_mask(layer, phi, column, n_modules_z) & conditions.dead[layer]).any() for layer in layers
            ):
                return float(phi), column
    raise AssertionError("no free placement")


def test_fresh_clean_synthetic_run_is_not_flagged(model, fresh_run):
    maps = fresh_run.maps
    flag, metric = model.predict_with_score(maps)
    assert flag.shape == (100,)
    assert not flag.any(), f"clean LS flagged: {np.flatnonzero(flag).tolist()}"
    assert (metric == 0).all()
    assert model.evaluate(maps).evaluated.all(), "the run must be above the entries cut to mean anything"


def test_dead_2x16_region_in_two_layers_at_the_same_place_is_flagged(model, fresh_run):
    layers = ["BPix2", "BPix3"]
    phi, column = _free_place(fresh_run.conditions, layers)
    injected = synthetic.inject_region(fresh_run.maps, layers, phi, column, n_modules_z=2, factor=0.0)
    for layer in layers:
        assert not injected[layer][:, synthetic.region_mask(layer, phi, column)].any()
    result = model.evaluate(injected, keep_intermediates=True)
    assert result.flag.all(), f"not flagged: {np.flatnonzero(~result.flag).tolist()}"
    assert (result.metric >= 16).all()
    # Flagged for the right reason: nothing set outside the region's 16 columns.
    outside = np.ones(64, dtype=bool)
    outside[8 * column : 8 * column + 16] = False
    assert not result.combined[:, :, outside].any()


# ----------------------------------------------------------------------------------- toy model
# Two layers of raw shape 10 x 44 with a cross (rows 4, 5; columns 20..23), one flat component,
# a flat reference. A map of 100 counts per bin preprocesses to 1 everywhere, reconstructs to 1,
# and has loss 0; a dead bin preprocesses to 0, is fed to the NMF as 1, and has loss 1.

TOY_ROWS = [0, 1, 2, 3, 6, 7, 8, 9]
TOY_COLUMNS = list(range(20)) + list(range(24, 44))
REGION = (slice(2, 4), slice(10, 26))  # a 2x16 region on the reduced 8 x 40 grid


def _toy_model(zero_fraction=(None, None), min_entries=1000.0):
    layers = []
    for name, empty in zip(("A", "B"), zero_fraction, strict=True):
        layers.append(
            {
                "name": name,
                "shape": (10, 44),
                "kept_rows": TOY_ROWS,
                "kept_columns": TOY_COLUMNS,
                "components": np.ones((1, 8 * 40)),
                "reference": np.ones((8, 40)),
                "zero_fraction": np.zeros((8, 40)) if empty is None else empty,
                "min_entries": min_entries,
            }
        )
    return PixelNMF(layers)


def _toy_maps(region_a=None, region_b=None, factor=0.0):
    maps = {}
    for name, region in (("A", region_a), ("B", region_b)):
        raw = np.zeros((1, 10, 44), dtype=np.int32)
        reduced = np.full((8, 40), 100, dtype=np.int32)
        if region is not None:
            reduced[region] = int(100 * factor)
        raw[0][np.ix_(TOY_ROWS, TOY_COLUMNS)] = reduced
        maps[name] = raw
    return maps


def _reduced_mask(region) -> np.ndarray:
    mask = np.zeros((8, 40), dtype=bool)
    mask[region] = True
    return mask


def test_toy_model_intermediate_maps_are_the_hand_computed_ones():
    result = _toy_model().evaluate(_toy_maps(REGION, REGION), keep_intermediates=True)
    dead = _reduced_mask(REGION)
    for name in ("A", "B"):
        layer = result.layers[name]
        np.testing.assert_allclose(layer.preprocessed[0], np.where(dead, 0.0, 1.0), rtol=1e-6, atol=0)
        np.testing.assert_allclose(layer.reconstruction[0], np.ones((8, 40)), rtol=1e-6)
        np.testing.assert_allclose(layer.loss[0], np.where(dead, 1.0, 0.0), rtol=1e-6, atol=1e-10)
        np.testing.assert_array_equal(layer.clustered[0], dead)
    np.testing.assert_array_equal(result.combined[0], dead)
    assert result.flag.tolist() == [True] and result.metric.tolist() == [32.0]


def test_toy_model_hot_region_is_flagged_and_the_rest_stays_below_threshold():
    # Hot x3: mean of the non-zero bins is (288 * 100 + 32 * 300) / 320 = 120, so the rest is at
    # 100/120 (loss (1/6)^2 = 0.028 < 0.04) and the region at 2.5 (loss 2.25).
    result = _toy_model().evaluate(_toy_maps(REGION, REGION, factor=3.0), keep_intermediates=True)
    hot = _reduced_mask(REGION)
    np.testing.assert_allclose(result.layers["A"].loss[0], np.where(hot, 2.25, 1 / 36), rtol=1e-5)
    assert result.flag.tolist() == [True] and result.metric.tolist() == [32.0]


@pytest.mark.parametrize(
    "region_a, region_b",
    [
        (REGION, None),  # one layer only
        (REGION, (slice(5, 7), slice(10, 26))),  # two layers, different places
        ((slice(2, 4), slice(10, 18)), (slice(2, 4), slice(10, 18))),  # a 2x8 module: no 2x16 window
    ],
    ids=["one_layer", "different_places", "single_module"],
)
def test_toy_model_does_not_flag(region_a, region_b):
    flag, metric = _toy_model().predict_with_score(_toy_maps(region_a, region_b))
    assert flag.tolist() == [False] and metric.tolist() == [0.0]


def test_toy_model_loss_mask_suppresses_a_region_empty_in_training():
    empty = np.where(_reduced_mask(REGION), 1.0, 0.0)
    both = _toy_model(zero_fraction=(empty, empty))
    np.testing.assert_array_equal(both.loss_mask, 2 * _reduced_mask(REGION))
    assert both.predict(_toy_maps(REGION, REGION)).tolist() == [False]
    one = _toy_model(zero_fraction=(empty, None))
    assert one.predict(_toy_maps(REGION, REGION)).tolist() == [True]
    # "Empty in at least 90% of the training LS": 0.9 counts, 0.89 does not.
    exactly = np.where(_reduced_mask(REGION), 0.9, 0.0)
    np.testing.assert_array_equal(_toy_model(zero_fraction=(exactly, exactly)).loss_mask, 2 * _reduced_mask(REGION))
    barely = np.where(_reduced_mask(REGION), 0.89, 0.0)
    assert not _toy_model(zero_fraction=(barely, barely)).loss_mask.any()


def test_toy_model_entries_cut_is_strict():
    total = 100 * (8 * 40 - 32)  # 28800
    assert _toy_model(min_entries=total).predict(_toy_maps(REGION, REGION)).tolist() == [False]
    assert _toy_model(min_entries=total - 1).predict(_toy_maps(REGION, REGION)).tolist() == [True]
