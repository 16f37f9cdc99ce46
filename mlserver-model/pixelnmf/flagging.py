"""Stage 5: flag a lumisection when the combined map holds a solid block of bad bins."""

from __future__ import annotations

import numpy as np

from .windows import dilate_windows, window_sums


def flagged_area(combined: np.ndarray, blocks: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(N, R, C) bool -> (N, R, C) bool: the bins covered by a fully set block of any given shape."""
    covered = np.zeros_like(combined, dtype=bool)
    for block in blocks:
        full = window_sums(combined, block) == block[0] * block[1]
        covered |= dilate_windows(full, block, combined.shape[1:])
    return covered


def flag_and_score(combined: np.ndarray, blocks: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Flag (N,) bool and score (N,) float32 = number of bins in flagging blocks (0 when not flagged)."""
    area = flagged_area(combined, blocks).sum(axis=(1, 2))
    return area > 0, area.astype(np.float32)


#: Set bits of every byte value.
_BYTE_POPCOUNT = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


def flag_and_score_words(words: np.ndarray, n_columns: int, blocks: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """flag_and_score on packed rows (N, R) uint64 (see clustering.pack_rows)."""
    from .clustering import dilate_anchors, window_anchors

    covered = np.zeros_like(words)
    for block in blocks:
        covered |= dilate_anchors(window_anchors(words, n_columns, block, 0), n_columns, block)
    area = _BYTE_POPCOUNT[covered.view(np.uint8)].reshape(len(words), words.shape[1] * 8).sum(axis=1, dtype=np.int64)
    return area > 0, area.astype(np.float32)
