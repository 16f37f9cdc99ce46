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
    # mode="wrap": the indices are valid by construction, and numpy skips its bounds error path.
    ratio = np.multiply(raw_flat.take(index, axis=1, mode="wrap"), inverse, dtype=dtype)
    # Empty bins: counted once, used for the unit-mean scale and set to 1 for the NMF. (A bin
    # cannot become 0 by the scaling: the scale is positive and the ratios are >= 1 / max ref.)
    empty = ratio == 0
    n_nonzero = ratio.shape[1] - count_per_row(empty)
    total = ratio.sum(axis=1).astype(np.float64)
    scale = np.divide(n_nonzero, total, out=np.zeros_like(total), where=total > 0)
    ratio *= scale.astype(dtype)[:, None]
    prepared = np.empty_like(ratio)
    if dtype == np.float32:
        # Non-negative finite float32 values order like their int32 bit patterns, and numpy's
        # integer minimum is several times faster than its NaN-aware float minimum.
        np.minimum(ratio.view(np.int32), np.array(clip, dtype=np.float32).view(np.int32), out=prepared.view(np.int32))
    else:
        np.minimum(ratio, dtype.type(clip), out=prepared)
    np.copyto(prepared, 1, where=empty)
    return ratio, prepared


def count_per_row(flags: np.ndarray) -> np.ndarray:
    """(N, d) bool -> (N,) int64 number of set flags per row.

    When d is a multiple of 8, eight flags are added at once as the bytes of a uint64: in
    groups of at most 255 words no byte overflows into the next, then the bytes are summed.
    """
    n_rows, n_flags = flags.shape
    if n_flags % 8 or not flags.flags.c_contiguous or n_rows == 0:
        return np.count_nonzero(flags, axis=1).astype(np.int64)
    words = flags.view(np.uint64).reshape(n_rows, -1)
    n_words = words.shape[1]
    group = next(size for size in range(min(255, n_words), 0, -1) if n_words % size == 0)
    partial = words.reshape(n_rows, n_words // group, group).sum(axis=2, dtype=np.uint64)
    return partial.view(np.uint8).reshape(n_rows, -1).sum(axis=1, dtype=np.int64)


def prepare_unscaled(
    raw_flat: np.ndarray, index: np.ndarray, inverse: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The passes of ``prepare`` that need the data, leaving the per-map scale unapplied.

    Returns the ratio to the reference (N, kept bins), the empty-bin mask, the number of empty
    bins per map and the unit-mean scale per map (float32; 1 for a map without counts, whose
    ratio is all zero anyway). ``normalise`` = ratio * scale[:, None].
    """
    dtype = inverse.dtype
    ratio = np.multiply(raw_flat.take(index, axis=1, mode="wrap"), inverse, dtype=dtype)
    empty = ratio == 0
    n_empty = count_per_row(empty)
    total = ratio.sum(axis=1).astype(np.float64)
    scale = np.divide(ratio.shape[1] - n_empty, total, out=np.ones_like(total), where=total > 0)
    return ratio, empty, n_empty, scale.astype(dtype)
