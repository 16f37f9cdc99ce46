"""Pixel-barrel layer geometry: map shapes and the always-empty cross of each layer.

Each BPix layer map has rows = signed ladder coordinate, columns = signed module coordinate.
The two middle rows and the eight middle columns never receive clusters (there is no ladder or
module at coordinate 0) and are removed before anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Columns of every layer map; the middle eight (32:40) form the vertical bar of the cross.
N_COLUMNS = 72
CROSS_COLUMNS = slice(32, 40)
#: One module covers 2 rows (ladder halves) x 8 columns (read-out chips along z).
MODULE_SHAPE = (2, 8)


@dataclass(frozen=True)
class LayerGeometry:
    """Shape facts of one barrel layer map."""

    name: str
    layer: int
    n_rows: int
    n_columns: int = N_COLUMNS

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the raw map as DIALS sends it."""
        return (self.n_rows, self.n_columns)

    @property
    def cross_rows(self) -> slice:
        """The two always-empty middle rows."""
        middle = self.n_rows // 2
        return slice(middle - 1, middle + 1)

    @property
    def kept_rows(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_rows), np.arange(self.n_rows)[self.cross_rows])

    @property
    def kept_columns(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_columns), np.arange(self.n_columns)[CROSS_COLUMNS])

    @property
    def reduced_shape(self) -> tuple[int, int]:
        """Shape after the cross has been removed."""
        return (self.n_rows - 2, self.n_columns - (CROSS_COLUMNS.stop - CROSS_COLUMNS.start))

    @property
    def min_entries(self) -> float:
        """Minimum total count for a lumisection to be evaluated (0.5e6 / layer number)."""
        return 0.5e6 / self.layer


#: The four barrel layers, in the order of the DIALS inputs.
BPIX_LAYERS = (
    LayerGeometry("BPix1", 1, 26),
    LayerGeometry("BPix2", 2, 58),
    LayerGeometry("BPix3", 3, 90),
    LayerGeometry("BPix4", 4, 130),
)


def layer_by_name(name: str) -> LayerGeometry:
    for geometry in BPIX_LAYERS:
        if geometry.name == name:
            return geometry
    raise KeyError(f"unknown pixel-barrel layer {name!r}; known: {[g.name for g in BPIX_LAYERS]}")
