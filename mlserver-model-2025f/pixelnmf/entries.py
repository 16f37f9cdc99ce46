"""Minimum-entries filter: lumisections with too few clusters are not evaluated."""

from __future__ import annotations

import numpy as np


def has_enough_entries(raw_maps: list[np.ndarray], min_entries: list[float], upper_bounds: list | None = None) -> np.ndarray:
    """(N,) bool: every layer's total count is above its minimum.

    ``upper_bounds``: per layer a known upper bound of every count (or None), which lets
    integer counts be summed in int32 when no total can overflow it.
    """
    upper_bounds = upper_bounds or [None] * len(raw_maps)
    passing = [
        _totals(np.asarray(maps), bound) > minimum
        for maps, minimum, bound in zip(raw_maps, min_entries, upper_bounds, strict=True)
    ]
    return np.logical_and.reduce(passing)


def _totals(maps: np.ndarray, upper_bound: int | None = None) -> np.ndarray:
    """Total count per lumisection; integer counts are summed exactly."""
    dtype = np.float64 if maps.dtype.kind == "f" else np.int64
    n_bins = int(np.prod(maps.shape[1:]))
    if (
        dtype == np.int64
        and maps.dtype.itemsize <= 4
        and upper_bound is not None
        and 0 <= upper_bound * n_bins <= np.iinfo(np.int32).max
    ):
        dtype = np.int32  # exact: no total can exceed the int32 range
    return maps.sum(axis=tuple(range(1, maps.ndim)), dtype=dtype)
