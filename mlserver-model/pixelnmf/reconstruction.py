"""Stage 2: NMF reconstruction with fixed components, solved exactly.

With the components H (k x d) fixed, NMF's ``transform`` is a non-negative least-squares problem
per lumisection: minimise ||x - w H||^2 over w >= 0. With only a handful of components the exact
optimum is cheap: the optimum is the unconstrained least-squares solution on one subset S of the
components (its "passive set"), namely the feasible one (w_S >= 0) with the lowest residual.
Every subset's solution needs only the k x k Gram matrix G = H H^T and b = x H^T, so the whole
batch is solved at once, with no iteration and no per-lumisection loop.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

#: Above this many components the 2^k subsets stop being cheap.
MAX_EXHAUSTIVE_COMPONENTS = 12


def _subsets(n_components: int):
    for size in range(1, n_components + 1):
        yield from combinations(range(n_components), size)


def nnls_weights(x: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Exact non-negative weights W (N x k) minimising ||x - W H||^2 row by row.

    ``x``: (N, d); ``components``: (k, d). Subsets whose Gram block is singular are skipped:
    a rank-deficient H still gets a minimiser, from the independent subsets.
    """
    x = np.asarray(x, dtype=np.float64)
    components = np.asarray(components, dtype=np.float64)
    n_components = components.shape[0]
    if n_components > MAX_EXHAUSTIVE_COMPONENTS:
        raise ValueError(f"exact NNLS supports at most {MAX_EXHAUSTIVE_COMPONENTS} components, got {n_components}")
    gram = components @ components.T
    b = x @ components.T
    n_samples = x.shape[0]
    best_weights = np.zeros((n_samples, n_components))
    # The residual of a face solution is ||x||^2 - w_S . b_S, so the optimum maximises w_S . b_S;
    # the empty set (w = 0) scores 0.
    best_score = np.zeros(n_samples)
    for subset in _subsets(n_components):
        index = np.array(subset)
        block = gram[np.ix_(index, index)]
        if np.linalg.cond(block) > 1e12:
            continue
        weights = np.linalg.solve(block, b[:, index].T).T
        feasible = np.all(weights >= 0, axis=1)
        score = np.einsum("ij,ij->i", weights, b[:, index])
        better = feasible & (score > best_score)
        if better.any():
            best_score[better] = score[better]
            best_weights[better] = 0.0
            best_weights[np.ix_(better, index)] = weights[better]
    return best_weights


def reconstruct(x: np.ndarray, components: np.ndarray) -> np.ndarray:
    """``inverse_transform(transform(x))`` with the exact transform: (N, d) -> (N, d)."""
    return nnls_weights(x, components) @ components
