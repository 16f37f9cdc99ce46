"""The NMF1D model: what the joblib file holds and what the handler calls.

Its pickled state is a plain dict of numpy arrays and builtins (see ``__getstate__``), so the
file references nothing but numpy/joblib array plumbing and ``nmf1d.model.NMF1D`` itself.
"""

from __future__ import annotations

import numpy as np

from .nnls import SubsetNNLS

#: Bumped whenever the pickled state changes meaning; a file of another version is refused.
FORMAT_VERSION = 1
_STATE_KEYS = ("format_version", "input_name", "components", "score_scale", "min_entries", "training_quantiles")


class InputError(ValueError):
    """The counts handed to the model are not a batch of histograms it can score."""


class NMF1D:
    """Anomaly score of one 1D histogram per lumisection.

    ``components``: (k, n_bins) non-negative, each of unit sum (learned on normal lumisections).
    ``score_scale``: median mean-squared reconstruction error of the training lumisections, so a
    normal lumisection scores about 1. ``min_entries``: lumisections with fewer entries are
    not evaluated (score 0): their shape is dominated by counting noise.
    """

    def __init__(
        self, components, *, input_name: str, score_scale: float, min_entries: int, training_quantiles: dict | None = None
    ):
        components = np.array(components, dtype=np.float64)
        if components.ndim != 2 or components.size == 0:
            raise ValueError(f"components must be a non-empty (k, n_bins) array, got shape {components.shape}")
        if not np.isfinite(components).all() or (components < 0).any():
            raise ValueError("components must be finite and non-negative")
        if not np.isfinite(score_scale) or score_scale <= 0:
            raise ValueError(f"score_scale must be a positive number, got {score_scale}")
        self.format_version = FORMAT_VERSION
        self.input_name = str(input_name)
        self.components = components
        self.score_scale = float(score_scale)
        self.min_entries = int(min_entries)
        self.training_quantiles = {str(key): float(value) for key, value in (training_quantiles or {}).items()}
        self._solver = None

    # ------------------------------------------------------------------ description

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @property
    def n_bins(self) -> int:
        return int(self.components.shape[1])

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-lumisection shape of every input, by name."""
        return {self.input_name: (self.n_bins,)}

    # ------------------------------------------------------------------ evaluation

    @property
    def solver(self) -> SubsetNNLS:
        if self._solver is None:
            self._solver = SubsetNNLS(self.components)
        return self._solver

    def _counts(self, counts) -> np.ndarray:
        counts = np.asarray(counts)
        if counts.ndim != 2 or counts.shape[1] != self.n_bins:
            raise InputError(f"{self.input_name}: expected counts of shape (N, {self.n_bins}), got {counts.shape}")
        if counts.dtype.kind not in "iu":
            raise InputError(f"{self.input_name}: expected integer counts, got dtype {counts.dtype}")
        if counts.size and counts.min() < 0:
            raise InputError(f"{self.input_name}: counts must not be negative")
        return counts.astype(np.int64, copy=False)

    def normalise(self, counts) -> tuple[np.ndarray, np.ndarray]:
        """(fractions (N, n_bins) of unit sum or all zero, entries (N,)) of a batch of counts."""
        counts = self._counts(counts)
        entries = counts.sum(axis=1)
        fractions = np.zeros(counts.shape, dtype=np.float64)
        filled = entries > 0
        fractions[filled] = counts[filled] / entries[filled, None]
        return fractions, entries

    def reconstruct(self, fractions: np.ndarray) -> np.ndarray:
        """Best non-negative combination of the components for every row."""
        return self.solver.solve(fractions) @ self.components

    def mean_squared_error(self, counts) -> tuple[np.ndarray, np.ndarray]:
        """(unscaled mean squared reconstruction error (N,), evaluated mask (N,))."""
        fractions, entries = self.normalise(counts)
        difference = fractions - self.reconstruct(fractions)
        mse = np.einsum("ij,ij->i", difference, difference) / self.n_bins
        return mse, entries >= self.min_entries

    def score(self, counts) -> np.ndarray:
        """Anomaly score per lumisection, float32 (N,): ~1 for normal ones, 0 when not evaluated."""
        mse, evaluated = self.mean_squared_error(counts)
        return np.where(evaluated, mse / self.score_scale, 0.0).astype(np.float32)

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict:
        return {key: getattr(self, key) for key in _STATE_KEYS}

    def __setstate__(self, state: dict) -> None:
        version = state.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"NMF1D file format {version!r}, this code reads format {FORMAT_VERSION}: retrain with train.py")
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"NMF1D state lacks {missing}")
        for key in _STATE_KEYS:
            setattr(self, key, state[key])
        self._solver = None

    def __repr__(self) -> str:
        return f"NMF1D(input_name={self.input_name!r}, n_components={self.n_components}, n_bins={self.n_bins}, score_scale={self.score_scale:.3g})"
