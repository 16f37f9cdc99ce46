"""Stage 5 known answers: an LS is flagged when its combined map holds a full 1x8 or 2x4 block
(rows x columns); the metric is the number of bins inside such blocks."""

from __future__ import annotations

import numpy as np
import pytest
from pixelnmf import flagging

GRID = (24, 64)
BLOCKS = ((1, 8), (2, 4))


def _map(*rectangles) -> np.ndarray:
    combined = np.zeros((1, *GRID), dtype=bool)
    for rows, columns in rectangles:
        combined[0, rows, columns] = True
    return combined


def test_model_uses_the_documented_flag_blocks(model):
    assert tuple(tuple(block) for block in model.parameters["flag_blocks"]) == BLOCKS


@pytest.mark.parametrize(
    "rectangles, flag, metric",
    [
        ([(slice(3, 4), slice(10, 18))], True, 8),  # 1x8
        ([(slice(3, 5), slice(10, 14))], True, 8),  # 2x4
        ([(slice(3, 4), slice(10, 17))], False, 0),  # 1x7
        ([(slice(3, 5), slice(10, 13))], False, 0),  # 2x3
        ([(slice(3, 7), slice(10, 12))], False, 0),  # 4x2: a 2x4 block lies along the columns, not the rows
        ([(slice(0, 8), slice(10, 11))], False, 0),  # 8x1
        ([(slice(3, 6), slice(10, 13))], False, 0),  # 3x3
        ([(slice(3, 5), slice(10, 26))], True, 32),  # a 2x16 region: every bin in a block
        ([(slice(3, 5), slice(10, 15))], True, 10),  # 2x5: two overlapping 2x4 blocks cover all 10
        ([(slice(3, 4), slice(10, 18)), (slice(9, 10), slice(30, 37))], True, 8),  # the separate 1x7 does not count
        ([(slice(3, 4), slice(10, 18)), (slice(9, 11), slice(30, 34))], True, 16),  # two separate blocks
        ([(slice(3, 5), slice(10, 14)), (slice(5, 6), slice(10, 11))], True, 8),  # a stray bin touching a block
        ([(slice(23, 24), slice(56, 64))], True, 8),  # at the corner of the grid
        ([], False, 0),
    ],
)
def test_flag_and_metric_hand_examples(rectangles, flag, metric):
    flags, metrics = flagging.flag_and_score(_map(*rectangles), BLOCKS)
    assert flags.dtype == bool and metrics.dtype == np.float32
    assert flags.tolist() == [flag]
    assert metrics.tolist() == [metric]


def _brute_force_area(combined: np.ndarray) -> int:
    covered = np.zeros_like(combined)
    for height, width in BLOCKS:
        for r in range(combined.shape[0] - height + 1):
            for c in range(combined.shape[1] - width + 1):
                if combined[r : r + height, c : c + width].all():
                    covered[r : r + height, c : c + width] = True
    return int(covered.sum())


def test_random_maps_match_a_brute_force_block_scan():
    rng = np.random.default_rng(8)
    combined = rng.random((6, *GRID)) < np.array([0.3, 0.5, 0.6, 0.7, 0.0, 1.0])[:, None, None]
    flags, metrics = flagging.flag_and_score(combined, BLOCKS)
    areas = [_brute_force_area(one) for one in combined]
    assert metrics.tolist() == areas
    assert flags.tolist() == [area > 0 for area in areas]
    assert areas[4] == 0 and areas[5] == GRID[0] * GRID[1] and 0 < min(areas[1:4])
