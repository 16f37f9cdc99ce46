"""Minimum-entries filter: lumisections with too few clusters are not evaluated."""

from __future__ import annotations

import numpy as np


def has_enough_entries(raw_maps: list[np.ndarray], min_entries: list[float]) -> np.ndarray:
    """(N,) bool: every layer's total count is above its minimum."""
    passing = [_totals(np.asarray(maps)) > minimum for maps, minimum in zip(raw_maps, min_entries, strict=True)]
    return np.logical_and.reduce(passing)


def _totals(maps: np.ndarray) -> np.ndarray:
    """Total count per lumisection; integer counts are summed exactly."""
    dtype = np.float64 if maps.dtype.kind == "f" else np.int64
    return maps.sum(axis=tuple(range(1, maps.ndim)), dtype=dtype)
