"""Stage 2: NMF reconstruction with fixed components, solved exactly.

With the components H (k x d) fixed, NMF's ``transform`` is a non-negative least-squares problem
per lumisection: minimise ||x - w H||^2 over w >= 0. With only a handful of components the exact
optimum is cheap. It is the unconstrained least-squares solution on one subset S of the
components (a face of the non-negative orthant): among the subsets whose solution is feasible
(w_S >= 0), the one with the lowest residual. Every subset's solution needs only the k x k Gram
matrix G = H H^T and b = x H^T, so the whole batch is solved at once: one pass over the data for
b, then small dense algebra, with no iteration and no per-lumisection loop.
"""

from __future__ import annotations

from contextlib import contextmanager
from itertools import combinations

import numpy as np

#: Above this many components the 2^k subsets stop being cheap.
MAX_EXHAUSTIVE_COMPONENTS = 12
#: Subsets whose Gram block is worse conditioned than this are left out (degenerate components).
MAX_CONDITION = 1e12


_CONTROLLER = []


def _controller():
    """threadpoolctl's controller, created once (None when threadpoolctl is not installed)."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER.append(ThreadpoolController())
        except Exception:  # noqa: BLE001 - any failure: fall back to numpy's own loops
            _CONTROLLER.append(None)
    return _CONTROLLER[0]


@contextmanager
def single_threaded_blas():
    """Run the BLAS products on one thread: on these thin products (k = 5) a multi-threaded
    BLAS gains little and slows down several-fold when the other cores are busy.

    Yields True when the BLAS could be limited (threadpoolctl present), else False: the
    products then use einsum, whose loops are single-threaded anyway.
    """
    controller = _controller()
    if controller is None:
        yield False
        return
    with controller.limit(limits=1, user_api="blas"):
        yield True


def _product(a: np.ndarray, b: np.ndarray, use_blas: bool) -> np.ndarray:
    return np.matmul(a, b) if use_blas else np.einsum("ij,jk->ik", a, b)


class FaceSolver:
    """Exact NNLS against fixed components; precomputes the inverse Gram block of every subset."""

    def __init__(self, components: np.ndarray):
        self.components = np.ascontiguousarray(components, dtype=np.float64)
        n_components = self.components.shape[0]
        if n_components > MAX_EXHAUSTIVE_COMPONENTS:
            raise ValueError(f"exact NNLS supports at most {MAX_EXHAUSTIVE_COMPONENTS} components, got {n_components}")
        self._components_f32 = self.components.astype(np.float32)
        gram = self.components @ self.components.T
        inverses = []
        #: Index of the face of all components (-1 when it is too badly conditioned to keep).
        self.full_face = -1
        for size in range(1, n_components + 1):
            for subset in combinations(range(n_components), size):
                index = np.array(subset)
                block = gram[np.ix_(index, index)]
                if np.linalg.cond(block) > MAX_CONDITION:
                    continue
                # Embedded in k x k with zeros outside the subset, so all faces solve at once.
                inverse = np.zeros((n_components, n_components))
                inverse[np.ix_(index, index)] = np.linalg.inv(block)
                inverses.append(inverse)
                if size == n_components:
                    self.full_face = len(inverses) - 1
        self._inverses = np.array(inverses).reshape(-1, n_components, n_components)
        self._inverses_transposed = np.ascontiguousarray(self._inverses.transpose(0, 2, 1))

    def _components_like(self, x: np.ndarray) -> np.ndarray:
        return self._components_f32 if x.dtype == np.float32 else self.components

    def weights(self, x: np.ndarray, use_blas: bool | None = None) -> np.ndarray:
        """Exact non-negative weights W (N x k) minimising ||x - W H||^2 row by row.

        ``use_blas``: the product with the components by BLAS (the caller holds
        ``single_threaded_blas()``) or, False, by einsum; None: decide here.
        """
        x = np.asarray(x)
        if x.dtype != np.float32:
            x = x.astype(np.float64, copy=False)
        if use_blas is None:
            with single_threaded_blas() as blas:
                return self.weights(x, blas)
        # The one pass over the data runs in x's own precision; the k x k algebra in float64.
        b = _product(x, self._components_like(x).T, use_blas).astype(np.float64)
        return self.weights_from_products(b)

    def weights_from_products(self, b: np.ndarray) -> np.ndarray:
        """The exact weights from b = x H^T (N x k, float64)."""
        candidates = np.matmul(b, self._inverses_transposed)  # (faces, N, k): w_S = G_SS^-1 b_S
        feasible = np.all(candidates >= 0, axis=2)
        # The residual of a face solution is ||x||^2 - w_S . b_S: the optimum maximises w . b.
        # The empty face (w = 0) scores 0 and is always feasible.
        scores = np.where(feasible, np.einsum("sni,ni->sn", candidates, b), -np.inf)
        best = np.argmax(scores, axis=0)
        rows = np.arange(len(b))
        chosen = candidates[best, rows]
        chosen[scores[best, rows] <= 0] = 0.0
        return chosen

    def weights_of_prepared(
        self,
        ratio: np.ndarray,
        empty: np.ndarray,
        n_empty: np.ndarray,
        scale: np.ndarray,
        clip: float,
        use_blas: bool,
        never_empty: np.ndarray,
    ) -> np.ndarray:
        """``weights(x)`` for the NMF input x of the maps ``ratio * scale`` (clipped at ``clip``,
        empty bins set to 1), without materialising x (float32 ``ratio``).

        x = scale * ratio + empty wherever no bin is clipped, so x H^T = scale * (ratio H^T)
        + (sum of the components over the empty bins). The bins empty in every map (reference
        zero, ``never_empty`` False) add the same columns to every row; the other empty bins
        (rare: dead regions, low counts) are added row by row. Rows with a clipped bin are
        solved from their x directly.
        """
        components = self._components_f32
        b = _product(ratio, components.T, use_blas).astype(np.float64)
        b *= scale.astype(np.float64)[:, None]
        always_empty = ~never_empty
        b += self.components[:, always_empty].sum(axis=1)
        extra = np.flatnonzero(n_empty > always_empty.sum())
        if extra.size:
            b[extra] += (empty[extra] & never_empty).astype(np.float64) @ self.components.T
        clipped = np.flatnonzero(np.multiply(ratio.max(axis=1, initial=0), scale) > np.float32(clip))
        if clipped.size:
            x = np.minimum(ratio[clipped] * scale[clipped, None], np.float32(clip))
            x[empty[clipped]] = 1
            b[clipped] = _product(x, components.T, use_blas)
        return self.weights_from_products(b)

    def reconstruct_from_weights(self, weights: np.ndarray, use_blas: bool) -> np.ndarray:
        """weights H in float32 (the products of ``weights_of_prepared``'s callers)."""
        return _product(np.asarray(weights, dtype=np.float32), self._components_f32, use_blas)

    def reconstruct(self, x: np.ndarray, use_blas: bool | None = None) -> np.ndarray:
        """``inverse_transform(transform(x))`` with the exact transform, in x's float dtype."""
        x = np.asarray(x)
        if use_blas is None:
            with single_threaded_blas() as blas:
                return self.reconstruct(x, blas)
        components = self._components_like(x)
        return _product(self.weights(x, use_blas).astype(components.dtype), components, use_blas)


def nnls_weights(x: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Exact NNLS weights of ``x`` (N x d) against ``components`` (k x d)."""
    return FaceSolver(components).weights(x)


def reconstruct(x: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Reconstruction of ``x`` (N x d) from ``components`` (k x d), exact transform."""
    return FaceSolver(components).reconstruct(x)
