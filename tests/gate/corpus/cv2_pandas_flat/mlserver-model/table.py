"""Per-blade occupancy table with pandas: dead, hot and uneven blades of each lumisection."""

from __future__ import annotations

import numpy as np
import pandas as pd

N_TABLE_FEATURES = 3


def blade_table(maps: np.ndarray) -> pd.DataFrame:
    """Hits per (lumisection, blade row): one row per lumisection, one column per blade row."""
    n, rows, cols = maps.shape
    long = pd.DataFrame(
        {
            "ls": np.repeat(np.arange(n), rows * cols),
            "blade": np.tile(np.repeat(np.arange(rows), cols), n),
            "hits": maps.reshape(-1).astype(np.int64),
        }
    )
    return long.groupby(["ls", "blade"], sort=True)["hits"].sum().unstack("blade")


def table_features(maps: np.ndarray) -> np.ndarray:
    """(N, rows, cols) counts -> (N, 3) float32: fraction of dead blades, hottest and spread, relative to the median blade."""
    if len(maps) == 0:
        return np.zeros((0, N_TABLE_FEATURES), dtype=np.float32)
    table = blade_table(maps)
    relative = table.div(table.median(axis=1).clip(lower=1), axis=0)
    summary = pd.DataFrame(
        {"dead_fraction": (relative < 0.5).mean(axis=1), "hottest": relative.max(axis=1), "spread": relative.std(axis=1)}
    )
    return summary.to_numpy(dtype=np.float32)
