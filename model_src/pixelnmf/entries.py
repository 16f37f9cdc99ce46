"""Minimum-entries filter: lumisections with too few clusters are not evaluated."""

from __future__ import annotations

import numpy as np


def has_enough_entries(raw_maps: list[np.ndarray], min_entries: list[float]) -> np.ndarray:
    """(N,) bool: every layer's total count is above its minimum."""
    passing = [np.asarray(maps).sum(axis=(1, 2), dtype=np.float64) > minimum for maps, minimum in zip(raw_maps, min_entries)]
    return np.logical_and.reduce(passing)
