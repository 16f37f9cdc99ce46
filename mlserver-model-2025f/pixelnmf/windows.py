"""Sliding-window sums and dilations over a batch of 2D binary maps (shared by stages 3 and 5).

Windows are separable, so each axis is handled on its own. Along one axis the sum over a run of
``width`` bins is built by doubling (runs of 1, 2, 4, ... bins, each the sum of two shifted runs
of half the length) and adding the runs that make up ``width`` in binary: a few whole-array
additions in a small integer dtype instead of a sequential running sum.
"""

from __future__ import annotations

import numpy as np


def _along(axis: int, ndim: int, start: int, stop: int | None) -> tuple:
    index = [slice(None)] * ndim
    index[axis] = slice(start, stop)
    return tuple(index)


def sliding_sum(counts: np.ndarray, width: int, axis: int) -> np.ndarray:
    """Sum over every fully contained run of ``width`` along ``axis`` (length shrinks by width - 1)."""
    length = counts.shape[axis]
    n_out = length - width + 1
    if n_out <= 0:
        shape = list(counts.shape)
        shape[axis] = 0
        return np.zeros(shape, dtype=counts.dtype)
    result, offset, run, run_width, remaining = None, 0, counts, 1, width
    while remaining:
        if remaining & 1:
            piece = run[_along(axis, counts.ndim, offset, offset + n_out)]
            result = piece.copy() if result is None else np.add(result, piece, out=result)
            offset += run_width
        remaining >>= 1
        if remaining:
            # run[i] now sums counts[i : i + 2 * run_width]
            run = run[_along(axis, counts.ndim, 0, -run_width)] + run[_along(axis, counts.ndim, run_width, None)]
            run_width *= 2
    return result


def window_sums(binary: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Number of set bins in every fully contained ``window`` position.

    (N, R, C) -> (N, R - h + 1, C - w + 1); empty along an axis shorter than the window.
    """
    height, width = window
    dtype = np.uint8 if height * width < 256 else np.int32
    counts = binary.view(np.uint8) if binary.dtype == bool and dtype == np.uint8 else binary.astype(dtype)
    return sliding_sum(sliding_sum(counts, width, axis=2), height, axis=1)


def dilate_windows(anchors: np.ndarray, window: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Set every bin covered by a window whose top-left corner is a set anchor.

    ``anchors``: (N, R - h + 1, C - w + 1) bool as from ``window_sums(...) >= k``; returns
    (N, R, C) bool.
    """
    height, width = window
    n_rows, n_columns = shape
    padded = np.zeros((anchors.shape[0], n_rows + height - 1, n_columns + width - 1), dtype=bool)
    padded[:, height - 1 : height - 1 + anchors.shape[1], width - 1 : width - 1 + anchors.shape[2]] = anchors
    # Bin (r, c) is covered when an anchor lies in [r-h+1, r] x [c-w+1, c]: in padded
    # coordinates, the window of the same shape starting at (r, c).
    return window_sums(padded, window) > 0
