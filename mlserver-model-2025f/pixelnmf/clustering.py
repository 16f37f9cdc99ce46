"""Stage 3: from reconstruction loss to clusters of bad bins.

A single noisy bin is not an anomaly; a whole region is. The loss is binarised and only bins
that belong to an (almost) fully bad window survive.
"""

from __future__ import annotations

import numpy as np

from .windows import dilate_windows, window_sums


def loss_map(preprocessed: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Squared difference, bin by bin."""
    return (preprocessed - reconstruction) ** 2


def cluster_loss(loss: np.ndarray, threshold: float, window: tuple[int, int], max_misses: int) -> np.ndarray:
    """Binarise ``loss > threshold`` and keep only windows with at most ``max_misses`` unset bins.

    Every bin of such a window is set (the missing ones too); bins in no such window are
    cleared. (N, R, C) float -> (N, R, C) bool.
    """
    binary = loss > threshold
    needed = window[0] * window[1] - max_misses
    anchors = window_sums(binary, window) >= needed
    return dilate_windows(anchors, window, binary.shape[1:])
