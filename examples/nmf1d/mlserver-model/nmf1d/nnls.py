"""Exact non-negative least squares for a handful of components, vectorised over a batch.

For ``k`` components the NNLS optimum is the unconstrained least-squares fit on its own support
(the components with a non-zero coefficient), and that fit has no negative coefficient. So
trying every one of the ``2**k - 1`` supports, keeping the fits without negative coefficients
and taking the one with the smallest residual (or all zeros, if nothing beats it) gives the
exact optimum. With k ~ 3 that is 7 small projections per batch: no iteration, no tolerance.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

#: 2**k supports are tried; beyond this an iterative solver would be the better choice.
MAX_COMPONENTS = 8


class SubsetNNLS:
    """min ||target - h @ components||^2 subject to h >= 0, for each row of a batch."""

    def __init__(self, components: np.ndarray):
        components = np.asarray(components, dtype=np.float64)
        if components.ndim != 2 or not 1 <= len(components) <= MAX_COMPONENTS:
            raise ValueError(
                f"components must be a (k, n_bins) array with 1 <= k <= {MAX_COMPONENTS}, got shape {components.shape}"
            )
        self.components = components
        k = len(components)
        self.supports = [list(support) for size in range(1, k + 1) for support in combinations(range(k), size)]
        # Least-squares coefficients on a support S: h_S = target @ projector_S.T
        self.projectors = []
        for support in self.supports:
            basis = components[support]
            self.projectors.append(np.linalg.solve(basis @ basis.T, basis))

    def solve(self, targets: np.ndarray) -> np.ndarray:
        """Coefficients (N, k) of the exact NNLS fit of every row of ``targets`` (N, n_bins)."""
        targets = np.asarray(targets, dtype=np.float64)
        n_rows = len(targets)
        best = np.zeros((n_rows, len(self.components)))
        best_residual = np.einsum("ij,ij->i", targets, targets)  # the all-zero fit
        for support, projector in zip(self.supports, self.projectors, strict=True):
            coefficients = targets @ projector.T
            difference = targets - coefficients @ self.components[support]
            residual = np.einsum("ij,ij->i", difference, difference)
            better = (coefficients >= 0).all(axis=1) & (residual < best_residual)
            if better.any():
                best[better] = 0.0
                best[np.ix_(better, support)] = coefficients[better]
                best_residual = np.where(better, residual, best_residual)
        return best
