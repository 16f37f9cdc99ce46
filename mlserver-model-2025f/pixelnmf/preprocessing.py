"""Stage 1: from raw occupancy counts to maps normalised by the training reference.

All functions take a batch of lumisections (LS) as the first axis. The float dtype of the
result is a parameter: the model runs in float32 (half the memory traffic of float64).
"""

from __future__ import annotations

import numpy as np


def remove_cross(maps: np.ndarray, kept_rows: np.ndarray, kept_columns: np.ndarray) -> np.ndarray:
    """Drop the always-empty middle rows and columns: (N, rows, cols) -> (N, kept rows, kept cols)."""
    n_ls, _, n_columns = maps.shape
    flat_index = (np.asarray(kept_rows)[:, None] * n_columns + np.asarray(kept_columns)[None, :]).ravel()
    return maps.reshape(n_ls, maps.shape[1] * n_columns).take(flat_index, axis=1).reshape(n_ls, len(kept_rows), len(kept_columns))


def normalise(reduced: np.ndarray, reference: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Divide by the reference map, clear negatives, scale each map to unit mean of its non-zero bins.

    Bins where the reference is zero (never seen in training) count as empty. A map with no
    non-zero bin stays all zero.
    """
    reference = np.asarray(reference, dtype=np.float64)
    inverse = np.divide(1.0, reference, out=np.zeros_like(reference), where=reference > 0).astype(dtype)
    ratio = np.multiply(reduced, inverse, dtype=dtype)
    np.maximum(ratio, 0, out=ratio)
    n_nonzero = np.count_nonzero(ratio, axis=(1, 2))
    total = ratio.sum(axis=(1, 2)).astype(np.float64)
    scale = np.divide(n_nonzero, total, out=np.zeros_like(total), where=total > 0)
    ratio *= scale.astype(dtype)[:, None, None]
    return ratio


def transform_input(preprocessed: np.ndarray, clip: float) -> np.ndarray:
    """What the NMF sees: values above ``clip`` clipped, exact zeros set to 1, NaN set to 0.

    Setting empty bins to the typical value 1 keeps dead bins from distorting the fit; they
    still show up in the loss, which compares the reconstruction with the unmodified input.
    Expects what ``normalise`` returns (no negative values).
    """
    prepared = np.minimum(preprocessed, preprocessed.dtype.type(clip))
    prepared += prepared == 0
    # fmax ignores NaN: NaN becomes 0, every other (non-negative) value is unchanged.
    np.fmax(prepared, 0, out=prepared)
    return prepared


def flat_index(kept_rows: np.ndarray, kept_columns: np.ndarray, n_columns: int) -> np.ndarray:
    """Positions of the kept bins in a flattened raw map (what ``remove_cross`` gathers)."""
    return (np.asarray(kept_rows)[:, None] * n_columns + np.asarray(kept_columns)[None, :]).ravel()


def inverse_reference(reference: np.ndarray, dtype=np.float32) -> np.ndarray:
    """1 / reference, 0 where the reference is 0, flattened: what ``normalise`` multiplies by."""
    reference = np.asarray(reference, dtype=np.float64).ravel()
    return np.divide(1.0, reference, out=np.zeros_like(reference), where=reference > 0).astype(dtype)


def prepare(raw_flat: np.ndarray, index: np.ndarray, inverse: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """``normalise(remove_cross(raw))`` and ``transform_input`` of it, fused for validated counts.

    ``raw_flat``: (N, rows * cols) non-negative finite counts; ``index`` from ``flat_index``;
    ``inverse`` from ``inverse_reference`` (its dtype is the compute dtype). Returns the
    preprocessed maps and what the NMF sees, both (N, kept bins). Same numbers as the separate
    stages: the ratio cannot be negative or NaN here, so those passes are skipped.
    """
    dtype = inverse.dtype
    ratio = np.multiply(raw_flat.take(index, axis=1), inverse, dtype=dtype)
    n_nonzero = np.count_nonzero(ratio, axis=1)
    total = ratio.sum(axis=1).astype(np.float64)
    scale = np.divide(n_nonzero, total, out=np.zeros_like(total), where=total > 0)
    ratio *= scale.astype(dtype)[:, None]
    prepared = np.minimum(ratio, dtype.type(clip))
    prepared += ratio == 0
    return ratio, prepared
