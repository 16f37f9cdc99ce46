"""Stage 2: the exact NNLS reconstruction (FaceSolver) against the stored components.

Tolerances:
* float64, exact combinations: |reconstruction - x| <= 1e-10 * max|x|. The Gram matrices of the
  stored components have condition numbers below 100, so the solve loses at most ~2 digits of
  the 16; observed errors are ~1e-14.
* float32 (what the model runs on): |reconstruction - x| <= 1e-4 * max|x|. The pass over the
  data (x H^T, up to 8192 bins) runs in float32 (eps 6e-8) and the condition number amplifies
  it; observed <= 2e-6 under numpy 1.26 and 2.4. 1e-4 is far below anything that matters to
  the loss threshold (0.04 on the squared difference of maps of unit mean).
* against scipy.optimize.nnls (float64): reconstruction and residual equal within relative 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pixelnmf import preprocessing
from pixelnmf.reconstruction import FaceSolver, nnls_weights, reconstruct
from scipy.optimize import nnls

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
LAYER_NAMES = ["BPix1", "BPix2", "BPix3", "BPix4"]
F64_TOLERANCE = 1e-10
F32_TOLERANCE = 1e-4
SCIPY_RTOL = 1e-6


def _components(model, name: str) -> np.ndarray:
    return next(layer for layer in model.layers if layer["name"] == name)["components"]


def _solvers(model) -> dict[str, FaceSolver]:
    return {layer["name"]: FaceSolver(layer["components"]) for layer in model.layers}


@pytest.fixture(scope="module")
def solvers(model):
    return _solvers(model)


def _weights_strategy(n_components: int):
    value = st.one_of(st.just(0.0), st.floats(min_value=1e-3, max_value=10.0, allow_nan=False, allow_infinity=False))
    return arrays(np.float64, st.tuples(st.integers(1, 4), st.just(n_components)), elements=value)


def test_stored_components_are_five_nonnegative_unit_mean_rows(model):
    for layer in model.layers:
        components = layer["components"]
        assert components.shape == (5, len(layer["kept_rows"]) * len(layer["kept_columns"]))
        assert (components >= 0).all()
        np.testing.assert_allclose(components.mean(axis=1), 1.0, rtol=1e-12)
        assert np.linalg.cond(components @ components.T) < 100, (
            "the tolerances of this file assume a well-conditioned Gram matrix"
        )


@SETTINGS
@given(data=st.data(), name=st.sampled_from(LAYER_NAMES))
def test_exact_nonnegative_combinations_reconstruct_to_themselves_float64(solvers, data, name):
    solver = solvers[name]
    weights = data.draw(_weights_strategy(solver.components.shape[0]), label="weights")
    x = weights @ solver.components
    scale = max(np.abs(x).max(), 1e-300)
    reconstruction = solver.reconstruct(x)
    assert reconstruction.dtype == np.float64
    assert np.abs(reconstruction - x).max() <= F64_TOLERANCE * scale
    found = solver.weights(x)
    assert (found >= 0).all()
    assert np.abs(found - weights).max() <= 1e-9 * max(weights.max(), 1e-300)


@SETTINGS
@given(data=st.data(), name=st.sampled_from(LAYER_NAMES))
def test_exact_nonnegative_combinations_reconstruct_to_themselves_float32(solvers, data, name):
    solver = solvers[name]
    weights = data.draw(_weights_strategy(solver.components.shape[0]), label="weights")
    x = (weights @ solver.components).astype(np.float32)
    reconstruction = solver.reconstruct(x)
    assert reconstruction.dtype == np.float32
    assert (solver.weights(x) >= 0).all()
    assert np.abs(reconstruction.astype(np.float64) - x).max() <= F32_TOLERANCE * max(float(np.abs(x).max()), 1e-30)


def _scipy_nnls(x: np.ndarray, components: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-LS weights and residual norms from scipy's active-set NNLS."""
    solved = [nnls(components.T, row) for row in x]
    return np.array([w for w, _ in solved]), np.array([r for _, r in solved])


def _test_inputs(model, reference_batch, name: str) -> tuple[np.ndarray, np.ndarray]:
    """float64 maps of one layer: (what the model feeds the NMF for 10 reference LS, constructed maps)."""
    layer = next(layer for layer in model.layers if layer["name"] == name)
    components = layer["components"]
    rows = np.arange(0, len(reference_batch["kind"]), 4)  # one LS of every kind
    reduced = preprocessing.remove_cross(reference_batch[name][rows], layer["kept_rows"], layer["kept_columns"])
    fed = preprocessing.transform_input(
        preprocessing.normalise(reduced, layer["reference"], dtype=np.float64).reshape(len(rows), -1), 5.0
    )
    rng = np.random.default_rng(7)
    h0, h1, h2, h3, h4 = components
    constructed = np.array(
        [
            rng.uniform(0.0, 5.0, components.shape[1]),  # random non-negative map
            np.maximum(2 * h0 - h1, 0.0),  # non-negative maps pulling against some components
            np.maximum(h2 + 0.5 * h4 - h3 - h1, 0.0) * rng.uniform(0.5, 1.5, components.shape[1]),
            h0 - h1,  # negative directions
            2 * h2 - h0 - h3,
            -h0 + 0.1 * h4,
            -components.sum(axis=0),  # every b_i < 0: the optimum is w = 0
            np.zeros(components.shape[1]),
        ]
    )
    return fed, constructed


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_reconstruction_equals_scipy_nnls(model, reference_batch, solvers, name):
    solver = solvers[name]
    components = solver.components
    fed, constructed = _test_inputs(model, reference_batch, name)
    active = 0
    for x in (fed, constructed):
        expected_weights, expected_residual = _scipy_nnls(x, components)
        active += int((expected_weights == 0).sum())
        weights = solver.weights(x)
        reconstruction = solver.reconstruct(x)
        scale = np.abs(x).max(axis=1, keepdims=True) + 1e-300
        expected = expected_weights @ components
        assert np.all(np.abs(reconstruction - expected) <= SCIPY_RTOL * (np.abs(expected) + scale))
        np.testing.assert_allclose(np.linalg.norm(x - reconstruction, axis=1), expected_residual, rtol=SCIPY_RTOL, atol=1e-12)
        assert np.all(np.abs(weights - expected_weights) <= SCIPY_RTOL * (expected_weights.max(axis=1, keepdims=True) + 1e-12))
    assert active >= 8, "the inputs must include solutions with active constraints (zero weights)"


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_weights_satisfy_the_nnls_optimality_conditions(model, reference_batch, solvers, name):
    """KKT: w >= 0, gradient g = w G - x H^T >= 0 and w . g = 0 (complementarity), checked in float64."""
    solver = solvers[name]
    components = solver.components
    x = np.concatenate(_test_inputs(model, reference_batch, name))
    weights = solver.weights(x)
    gram, b = components @ components.T, x @ components.T
    gradient = weights @ gram - b
    tolerance = 1e-9 * (np.abs(b).max(axis=1, keepdims=True) + np.abs(gram).max())
    assert (weights >= 0).all()
    assert (gradient >= -tolerance).all()
    assert (np.abs(weights * gradient) <= tolerance * (weights.max(axis=1, keepdims=True) + 1)).all()


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_float32_reconstruction_is_close_to_scipy_nnls(model, reference_batch, solvers, name):
    """The model's own precision: float32 maps, compared with the float64 optimum of the same maps."""
    fed, constructed = _test_inputs(model, reference_batch, name)
    x32 = np.concatenate([fed, constructed]).astype(np.float32)
    expected_weights, _ = _scipy_nnls(x32.astype(np.float64), solvers[name].components)
    reconstruction = solvers[name].reconstruct(x32)
    assert reconstruction.dtype == np.float32
    scale = np.abs(x32).max(axis=1, keepdims=True).astype(np.float64) + 1e-30
    assert np.all(np.abs(reconstruction - expected_weights @ solvers[name].components) <= F32_TOLERANCE * scale)


def test_zero_and_empty_inputs(solvers):
    solver = solvers["BPix1"]
    d = solver.components.shape[1]
    assert solver.weights(np.zeros((0, d))).shape == (0, 5)
    assert solver.reconstruct(np.zeros((0, d), dtype=np.float32)).shape == (0, d)
    assert (solver.reconstruct(np.zeros((2, d))) == 0).all()
    assert (solver.reconstruct(-np.ones((1, d), dtype=np.float32)) == 0).all()


def test_module_level_helpers_match_the_solver(solvers):
    solver = solvers["BPix2"]
    x = np.random.default_rng(3).uniform(0, 3, (3, solver.components.shape[1]))
    np.testing.assert_array_equal(nnls_weights(x, solver.components), solver.weights(x))
    np.testing.assert_array_equal(reconstruct(x, solver.components), solver.reconstruct(x))


def test_too_many_components_are_refused():
    with pytest.raises(ValueError, match="at most 12 components"):
        FaceSolver(np.eye(13, 20))


def test_exact_solver_residual_is_never_larger_than_sklearn_iterative_transform(model, reference_batch):
    """The reason for the exact solver: scikit-learn's multiplicative-update transform only approaches the optimum.

    Real BPix1 components on every 12th bin (128 bins, to keep the 1000-iteration fit cheap), fed
    what the model feeds the NMF plus maps with active constraints.
    """
    from pixelnmf_train.train import sklearn_transform_reconstruction

    components = _components(model, "BPix1")[:, ::12].copy()
    fed, constructed = _test_inputs(model, reference_batch, "BPix1")
    x = np.concatenate([fed[:6], constructed[:3]])[:, ::12].copy()
    ours = FaceSolver(components).reconstruct(x)
    theirs = sklearn_transform_reconstruction(x, components)
    residual_ours = ((x - ours) ** 2).sum(axis=1)
    residual_theirs = ((x - theirs) ** 2).sum(axis=1)
    assert np.all(residual_ours <= residual_theirs * (1 + 1e-9) + 1e-12), (residual_ours, residual_theirs)
    # Loose: both solve the same problem, so the reconstructions are close.
    assert (FaceSolver(components).weights(x) >= 0).all()
    assert np.abs(ours - theirs).max() <= 1e-3 * np.abs(x).max()


def test_weights_of_prepared_equal_the_weights_of_the_materialised_nmf_input(model):
    """The folded path (scale applied in the products, empty bins added as component sums,
    clipped rows solved directly) gives the weights of the NMF input built explicitly."""
    layer = model.layers[1]
    solver = FaceSolver(layer["components"])
    inverse = preprocessing.inverse_reference(layer["reference"])
    index = preprocessing.flat_index(layer["kept_rows"], layer["kept_columns"], layer["shape"][1])
    rng = np.random.default_rng(11)
    raw = rng.poisson(2000, size=(6, layer["shape"][0] * layer["shape"][1])).astype(np.int32)
    raw[1, index[:500]] = 0  # a dead region: empty bins beyond the always-empty ones
    raw[2, index[1000:1016]] *= 40  # a hot region: clipped at 5
    raw[3] = 0  # no counts at all
    raw[4, index[:200]] = 0
    raw[4, index[3000:3010]] *= 50  # both
    ratio, empty, n_empty, scale = preprocessing.prepare_unscaled(raw, index, inverse)
    assert (np.multiply(ratio.max(axis=1), scale) > 5).tolist() == [False, False, True, False, True, False]
    _, prepared = preprocessing.prepare(raw, index, inverse, 5.0)
    expected = solver.weights(prepared.astype(np.float64))
    got = solver.weights_of_prepared(ratio, empty, n_empty, scale, 5.0, True, inverse > 0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
