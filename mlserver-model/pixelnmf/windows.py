"""Sliding-window sums and dilations over a batch of 2D binary maps (shared by stages 3 and 5)."""

from __future__ import annotations

import numpy as np


def window_sums(binary: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Number of set bins in every fully contained ``window`` position.

    (N, R, C) -> (N, R - h + 1, C - w + 1); empty along an axis shorter than the window.
    """
    height, width = window
    counts = binary.astype(np.int32)
    summed = np.zeros((counts.shape[0], counts.shape[1] + 1, counts.shape[2] + 1), dtype=np.int32)
    np.cumsum(counts, axis=1, out=summed[:, 1:, 1:])
    np.cumsum(summed[:, 1:, 1:], axis=2, out=summed[:, 1:, 1:])
    return (
        summed[:, height:, width:]
        - summed[:, :-height, width:]
        - summed[:, height:, :-width]
        + summed[:, :-height, :-width]
    )


def dilate_windows(anchors: np.ndarray, window: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Set every bin covered by a window whose top-left corner is a set anchor.

    ``anchors``: (N, R - h + 1, C - w + 1) bool as returned by ``window_sums(...) >= k``;
    returns (N, R, C) bool.
    """
    height, width = window
    n_rows, n_columns = shape
    n_anchor_rows = max(n_rows - height + 1, 0)
    n_anchor_columns = max(n_columns - width + 1, 0)
    padded = np.zeros((anchors.shape[0], n_rows + height - 1, n_columns + width - 1), dtype=bool)
    padded[:, height - 1 : height - 1 + n_anchor_rows, width - 1 : width - 1 + n_anchor_columns] = anchors
    # A bin (r, c) is covered when some anchor lies in [r-h+1, r] x [c-w+1, c]: a window sum of
    # the anchors over a window of the same shape, shifted by the padding.
    return window_sums(padded, window) > 0
