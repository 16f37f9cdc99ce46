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


# -- the same stage on bit-packed rows ---------------------------------------------------------
#
# With at most 64 columns, one row of a binary map is one uint64 (bit j = column j). A window's
# number of unset bins, saturated at max_misses + 1, is then kept as a few bit planes (plane k:
# "at least k + 1 unset bins in the window starting here") and windows are grown by shifting
# whole rows: every operation handles 64 bins at once. Same result as cluster_loss.

WORD_BITS = 64


def pack_rows(binary: np.ndarray) -> np.ndarray:
    """(N, R, C <= 64) bool -> (N, R) uint64, bit j of a word = column j."""
    n_ls, n_rows, n_columns = binary.shape
    packed = np.packbits(binary, axis=2, bitorder="little")
    if packed.shape[2] < 8:
        packed = np.concatenate([packed, np.zeros((n_ls, n_rows, 8 - packed.shape[2]), dtype=np.uint8)], axis=2)
    return np.ascontiguousarray(packed).view("<u8").reshape(n_ls, n_rows)


def unpack_rows(words: np.ndarray, n_columns: int) -> np.ndarray:
    """(N, R) uint64 -> (N, R, n_columns) bool (inverse of pack_rows)."""
    n_ls, n_rows = words.shape
    as_bytes = np.ascontiguousarray(words, dtype="<u8").view(np.uint8).reshape(n_ls, n_rows, 8)
    return np.unpackbits(as_bytes, axis=2, count=n_columns, bitorder="little").view(bool)


def _add_saturating(first: list, second: list) -> list:
    """Bit planes of min(a + b, levels) from those of a and b (plane k: count >= k + 1)."""
    levels = len(first)
    out = []
    for k in range(levels):
        plane = first[k] | second[k]
        for i in range(k):  # a >= i + 1 and b >= k - i
            plane |= first[i] & second[k - 1 - i]
        out.append(plane)
    return out


def _shift_planes(planes: list, shift: int, axis: int) -> list:
    """Planes of the run starting ``shift`` further along ``axis`` (columns: bits; rows: words)."""
    if axis == 1:  # columns: bit j + shift moves to bit j
        return [plane >> np.uint64(shift) for plane in planes]
    return [np.concatenate([plane[:, shift:], np.zeros_like(plane[:, :shift])], axis=1) for plane in planes]


def _window_planes(planes: list, width: int, axis: int) -> list:
    """Saturated counts over runs of ``width`` along ``axis``, built by doubling."""
    result, offset, run, run_width, remaining = None, 0, planes, 1, width
    while remaining:
        if remaining & 1:
            piece = _shift_planes(run, offset, axis) if offset else run
            result = piece if result is None else _add_saturating(result, piece)
            offset += run_width
        remaining >>= 1
        if remaining:
            run = _add_saturating(run, _shift_planes(run, run_width, axis))
            run_width *= 2
    return result


def _smear(words: np.ndarray, width: int, axis: int) -> np.ndarray:
    """OR of ``words`` shifted towards higher positions by 0 .. width - 1 along ``axis``."""
    result, offset, run, run_width, remaining = None, 0, words, 1, width
    while remaining:
        if remaining & 1:
            piece = _shift_up(run, offset, axis) if offset else run
            result = piece if result is None else result | piece
            offset += run_width
        remaining >>= 1
        if remaining:
            run = run | _shift_up(run, run_width, axis)
            run_width *= 2
    return result


def _shift_up(words: np.ndarray, shift: int, axis: int) -> np.ndarray:
    if axis == 1:
        return words << np.uint64(shift)
    return np.concatenate([np.zeros_like(words[:, :shift]), words[:, :-shift]], axis=1)


def packable(n_columns: int) -> bool:
    return 0 < n_columns <= WORD_BITS


def window_anchors(words: np.ndarray, n_columns: int, window: tuple[int, int], max_misses: int) -> np.ndarray:
    """Packed anchors: windows inside the map with at most ``max_misses`` unset bins (the
    packed ``window_sums(binary, window) >= h * w - max_misses``, anchored at the top-left)."""
    n_rows = words.shape[1]
    height, width = window
    if height > n_rows or width > n_columns:
        return np.zeros_like(words)
    unset = ~words & np.uint64((1 << n_columns) - 1)
    planes = [unset] + [np.zeros_like(unset) for _ in range(max_misses)]
    planes = _window_planes(_window_planes(planes, width, axis=1), height, axis=0)
    anchors = ~planes[max_misses] & np.uint64((1 << (n_columns - width + 1)) - 1)
    anchors[:, n_rows - height + 1 :] = 0
    return anchors


def dilate_anchors(anchors: np.ndarray, n_columns: int, window: tuple[int, int]) -> np.ndarray:
    """Packed ``dilate_windows``: every bin covered by a window at a set anchor."""
    height, width = window
    return _smear(_smear(anchors, width, axis=1), height, axis=0) & np.uint64((1 << n_columns) - 1)


def cluster_packed(words: np.ndarray, n_columns: int, window: tuple[int, int], max_misses: int) -> np.ndarray:
    """Clustering of packed binary rows (N, R) uint64: every bin of the windows with at most
    ``max_misses`` unset bins, as packed rows."""
    return dilate_anchors(window_anchors(words, n_columns, window, max_misses), n_columns, window)


def cluster_words(loss: np.ndarray, threshold: float, window: tuple[int, int], max_misses: int) -> np.ndarray:
    """cluster_loss as packed rows (N, R) uint64, for maps with at most 64 columns."""
    return cluster_packed(pack_rows(loss > threshold), loss.shape[2], window, max_misses)


def cluster_loss_packed(loss: np.ndarray, threshold: float, window: tuple[int, int], max_misses: int) -> np.ndarray:
    """cluster_loss on bit-packed rows (maps with at most 64 columns); same result."""
    if not packable(loss.shape[2]):
        return cluster_loss(loss, threshold, window, max_misses)
    return unpack_rows(cluster_words(loss, threshold, window, max_misses), loss.shape[2])
