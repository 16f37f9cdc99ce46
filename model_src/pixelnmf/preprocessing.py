"""Stage 1: from raw occupancy counts to maps normalised by the training reference.

All functions take a batch of lumisections (LS) as the first axis.
"""

from __future__ import annotations

import numpy as np


def remove_cross(maps: np.ndarray, kept_rows: np.ndarray, kept_columns: np.ndarray) -> np.ndarray:
    """Drop the always-empty middle rows and columns: (N, rows, cols) -> (N, kept rows, kept cols)."""
    return maps[:, kept_rows[:, None], kept_columns[None, :]]


def normalise(reduced: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Divide by the reference map, clear negatives, scale each map to unit mean of its non-zero bins.

    Bins where the reference is zero (never seen in training) count as empty. A map with no
    non-zero bin stays all zero.
    """
    reduced = np.asarray(reduced, dtype=np.float64)
    safe_reference = np.where(reference > 0, reference, 1.0)
    ratio = np.where(reference > 0, reduced / safe_reference, 0.0)
    np.maximum(ratio, 0.0, out=ratio)
    nonzero = ratio > 0
    n_nonzero = nonzero.sum(axis=(1, 2))
    total = ratio.sum(axis=(1, 2))
    scale = np.divide(n_nonzero, total, out=np.zeros_like(total), where=total > 0)
    ratio *= scale[:, None, None]
    return ratio


def transform_input(preprocessed: np.ndarray, clip: float) -> np.ndarray:
    """What the NMF sees: values above ``clip`` clipped, exact zeros set to 1, NaN set to 0.

    Setting empty bins to the typical value 1 keeps dead bins from distorting the fit; they
    still show up in the loss, which compares the reconstruction with the unmodified input.
    """
    prepared = np.minimum(preprocessed, clip)
    prepared[prepared == 0] = 1.0
    prepared[np.isnan(prepared)] = 0.0
    return prepared
