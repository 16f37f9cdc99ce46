"""Stage 4: bring the layers' clustered maps onto one grid and require agreement between layers.

The layers have different numbers of ladders (rows) but the same module columns; a bin of the
target grid is set when any source bin that overlaps it is set.
"""

from __future__ import annotations

import numpy as np


def overlap_matrix(n_target: int, n_source: int) -> np.ndarray:
    """(n_target, n_source) bool: target bin i and source bin j overlap on [0, 1) with positive length.

    Exact in integers: bin i of n covers [i/n, (i+1)/n).
    """
    target = np.arange(n_target)[:, None]
    source = np.arange(n_source)[None, :]
    return (target * n_source < (source + 1) * n_target) & (source * n_target < (target + 1) * n_source)


def _any_over_ranges(binary: np.ndarray, n_target: int, axis: int) -> np.ndarray:
    """Rebin one axis: target bin i is set when any source bin overlapping it is set."""
    n_source = binary.shape[axis]
    if n_source == n_target:
        return binary
    overlap = overlap_matrix(n_target, n_source)
    first = overlap.argmax(axis=1)
    last = first + overlap.sum(axis=1) - 1  # the overlapping source bins are contiguous
    rebinned = np.take(binary, first, axis=axis)
    for shift in range(1, int((last - first).max()) + 1):
        rebinned |= np.take(binary, np.minimum(first + shift, last), axis=axis)
    return rebinned


def to_grid(binary: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rebin a (N, R, C) bool batch onto (N, *shape) with the any-overlap rule."""
    return _any_over_ranges(_any_over_ranges(binary, shape[0], axis=1), shape[1], axis=2)


def loss_mask(empty_layers: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Per target bin, how many layers have a (mostly) empty bin there; (R, C) int."""
    return sum(to_grid(empty[None], shape)[0].astype(np.int64) for empty in empty_layers)


def combine_layers(layer_maps: list[np.ndarray], shape: tuple[int, int], mask: np.ndarray, min_layers: int) -> np.ndarray:
    """Set where at least ``min_layers`` layers agree and their number exceeds the loss mask."""
    count = sum(to_grid(binary, shape).astype(np.int16) for binary in layer_maps)
    return (count >= min_layers) & (count > mask)


# -- the same stage on bit-packed rows (see clustering.pack_rows) -------------------------------


def required_layers(mask: np.ndarray, min_layers: int, n_layers: int) -> list[np.ndarray]:
    """Packed rows, one array per count k = 1..n_layers: the bins needing exactly k layers
    (k = max(min_layers, mask + 1)); bins needing more than n_layers are in none."""
    from .clustering import pack_rows

    needed = np.maximum(mask.astype(np.int64) + 1, min_layers)
    return [pack_rows((needed == k)[None])[0] for k in range(1, n_layers + 1)]


def combine_words(layer_words: list[np.ndarray], n_rows: int, required: list[np.ndarray]) -> np.ndarray:
    """combine_layers on packed rows: each layer's rows brought onto n_rows (any overlap), the
    number of layers set per bin counted in saturating bit planes, compared with ``required``."""
    from .clustering import _add_saturating

    levels = len(required)
    total = None
    for words in layer_words:
        rebinned = _any_over_ranges(words, n_rows, axis=1)
        planes = [rebinned] + [np.zeros_like(rebinned) for _ in range(levels - 1)]
        total = planes if total is None else _add_saturating(total, planes)
    combined = np.zeros_like(total[0])
    for k, needing in enumerate(required):
        combined |= total[k] & needing  # count >= k + 1 where exactly k + 1 are needed
    return combined
