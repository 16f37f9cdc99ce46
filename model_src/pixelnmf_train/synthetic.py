"""Seeded synthetic BPix1-4 cluster-occupancy maps, runs of lumisections and anomaly injectors.

Used to train the PixelNMF model and to build the committed reference batch of test lumisections
(LS). Only numpy is needed; every function is vectorised over LS and takes an explicit
``numpy.random.Generator`` (or a seed), so the same seed gives the same output on the same numpy.

Conventions (all on the layer's *reduced* grid, i.e. with the always-empty cross removed, see
:mod:`pixelnmf.geometry`):

* **Module**: ``geometry.MODULE_SHAPE`` = 2 rows x 8 columns, aligned on the reduced grid: ladder
  ``l`` covers reduced rows ``2l, 2l+1``; module position ``m`` (0..7 along z) covers reduced
  columns ``8m .. 8m+7``. Reduced columns 0..31 are raw columns 0..31 and reduced columns 32..63
  are raw columns 40..71, so modules never straddle the cross.
* **Dead ROC**: one row x 8 columns inside a module (one half of a module, the 8 read-out chips
  of one ladder half along z, read out together). Dead modules and dead ROCs are permanent:
  they belong to the :class:`DetectorConditions`, fixed per seed.
* **phi**: an azimuth fraction in [0, 1) is the fraction of the reduced row axis. On a layer
  with ``R`` reduced rows it selects ladder ``floor(phi * R / 2)``; the ladder's row-fraction
  interval contains ``phi`` on every layer, so the same ``phi`` lands on overlapping rows when the
  layers are brought onto BPix1's 24-row grid.
* **z**: reduced column ``j`` sits at normalised module coordinate ``(j + 0.5) / 32 - 1``
  (in (-1, 1)); occupancy falls with ``|z|``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pixelnmf.geometry import (
    BPIX_LAYERS,
    CROSS_COLUMNS,
    MODULE_SHAPE,
    LayerGeometry,
    layer_by_name,
)

#: Seed of the default detector conditions shared by training runs and the reference batch.
BASE_SEED = 20251127

#: Mean counts per live bin at pileup 60 (mean over non-cross, non-dead bins).
MEAN_COUNTS_AT_PILEUP_60 = {"BPix1": 4000.0, "BPix2": 2200.0, "BPix3": 1800.0, "BPix4": 1500.0}
REFERENCE_PILEUP = 60.0
#: Pileup at which a fill is levelled at the start of a run.
LEVELLED_PILEUP = 62.0

#: Steepness of the fall with |z|: profile = 1 / sqrt(1 + (slope * z)^2), z in (-1, 1).
#: Inner layers (small radius) fall faster; BPix1 drops to ~0.55 of its centre at the ends.
_Z_SLOPE = {"BPix1": 1.5, "BPix2": 1.0, "BPix3": 0.75, "BPix4": 0.6}
#: Amplitude of the cos(phi) modulation (beam-spot offset), stronger on inner layers.
_PHI_AMPLITUDE = {"BPix1": 0.06, "BPix2": 0.04, "BPix3": 0.03, "BPix4": 0.02}
#: Relative spread of the fixed per-module response and of the per-bin response inside it.
_MODULE_GAIN_SPREAD = 0.03
_BIN_GAIN_SPREAD = 0.015
#: Per-LS relative jitter of the z steepness (length of the luminous region) and pileup.
_Z_SLOPE_JITTER = 0.03
_PILEUP_JITTER = 0.02

# Independent random streams for the different entry points, so that e.g. generate_run(seed=3)
# and make_reference_batch(seed=3) do not share random numbers.
_STREAM_RUN = 1
_STREAM_BATCH = 2

_N_MODULES_Z = 8  # module positions along z on the reduced 64-column grid
_LAYER_NAMES = tuple(g.name for g in BPIX_LAYERS)


# ----------------------------------------------------------------------------- grid helpers


def _n_ladders(geometry: LayerGeometry) -> int:
    return geometry.reduced_shape[0] // MODULE_SHAPE[0]


def _cross_mask(geometry: LayerGeometry) -> np.ndarray:
    """Bool raw-shape mask of the always-empty cross."""
    mask = np.zeros(geometry.shape, dtype=bool)
    mask[geometry.cross_rows, :] = True
    mask[:, CROSS_COLUMNS] = True
    return mask


def _reduced_block_mask(geometry: LayerGeometry, row_start: int, n_rows: int, col_start: int, n_cols: int) -> np.ndarray:
    """Raw-shape bool mask of a rectangle given on the reduced grid."""
    rows = geometry.kept_rows[row_start : row_start + n_rows]
    cols = geometry.kept_columns[col_start : col_start + n_cols]
    mask = np.zeros(geometry.shape, dtype=bool)
    mask[np.ix_(rows, cols)] = True
    return mask


def _raw_z(geometry: LayerGeometry) -> np.ndarray:
    """Normalised module coordinate of each raw column (0 on the cross, which is empty anyway)."""
    n_reduced = geometry.reduced_shape[1]
    z = np.zeros(geometry.n_columns)
    z[geometry.kept_columns] = (np.arange(n_reduced) + 0.5) / (n_reduced / 2) - 1.0
    return z


def _raw_phi(geometry: LayerGeometry) -> np.ndarray:
    """Azimuth fraction (ladder centre) of each raw row (0 on the cross rows)."""
    n_ladders = _n_ladders(geometry)
    phi = np.zeros(geometry.n_rows)
    ladder = np.arange(geometry.reduced_shape[0]) // MODULE_SHAPE[0]
    phi[geometry.kept_rows] = (ladder + 0.5) / n_ladders
    return phi


def _as_rng(rng) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


# ----------------------------------------------------------------------- detector conditions


@dataclass(frozen=True, eq=False)
class DetectorConditions:
    """Permanent state of the detector: dead modules / read-out chips and per-bin response.

    ``dead[layer]`` is a bool mask in the raw map shape ``(rows, 72)``; ``gain[layer]`` (optional,
    defaults to 1) is a fixed relative response per bin of mean ~1 (module-to-module and
    chip-to-chip variations) that the NMF reference map divides out.
    """

    dead: dict[str, np.ndarray]
    gain: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        n_dead_modules: tuple[int, int] = (1, 2),
        n_dead_rocs: tuple[int, int] = (1, 3),
    ) -> DetectorConditions:
        """Draw per layer an inclusive-range number of dead modules and dead ROCs (1x8 halves)."""
        rng = _as_rng(rng)
        dead: dict[str, np.ndarray] = {}
        gain: dict[str, np.ndarray] = {}
        for geometry in BPIX_LAYERS:
            n_modules = _n_ladders(geometry) * _N_MODULES_Z
            n_mod = int(rng.integers(n_dead_modules[0], n_dead_modules[1], endpoint=True))
            n_roc = int(rng.integers(n_dead_rocs[0], n_dead_rocs[1], endpoint=True))
            dead_modules = rng.choice(n_modules, size=n_mod, replace=False)
            live_modules = np.setdiff1d(np.arange(n_modules), dead_modules)
            # a dead ROC is one half (row) of a module that is not itself dead
            halves = rng.choice(live_modules.size * MODULE_SHAPE[0], size=n_roc, replace=False)
            mask = np.zeros(geometry.shape, dtype=bool)
            for module in dead_modules:
                ladder, position = divmod(int(module), _N_MODULES_Z)
                mask |= _reduced_block_mask(
                    geometry,
                    MODULE_SHAPE[0] * ladder,
                    MODULE_SHAPE[0],
                    MODULE_SHAPE[1] * position,
                    MODULE_SHAPE[1],
                )
            for half in halves:
                module_index, row_in_module = divmod(int(half), MODULE_SHAPE[0])
                ladder, position = divmod(int(live_modules[module_index]), _N_MODULES_Z)
                mask |= _reduced_block_mask(
                    geometry,
                    MODULE_SHAPE[0] * ladder + row_in_module,
                    1,
                    MODULE_SHAPE[1] * position,
                    MODULE_SHAPE[1],
                )
            dead[geometry.name] = mask

            ladders, positions = _n_ladders(geometry), _N_MODULES_Z
            module_gain = 1.0 + _MODULE_GAIN_SPREAD * rng.standard_normal((ladders, positions))
            reduced = np.repeat(np.repeat(module_gain, MODULE_SHAPE[0], 0), MODULE_SHAPE[1], 1)
            reduced = reduced * (1.0 + _BIN_GAIN_SPREAD * rng.standard_normal(reduced.shape))
            full = np.ones(geometry.shape)
            full[np.ix_(geometry.kept_rows, geometry.kept_columns)] = np.clip(reduced, 0.5, 1.5)
            gain[geometry.name] = full
        return cls(dead=dead, gain=gain)

    def gain_map(self, layer: str) -> np.ndarray:
        geometry = layer_by_name(layer)
        return self.gain.get(layer, np.ones(geometry.shape))

    def live_mask(self, layer: str) -> np.ndarray:
        """Bool raw-shape mask of bins that can receive clusters (not cross, not dead)."""
        geometry = layer_by_name(layer)
        return ~_cross_mask(geometry) & ~np.asarray(self.dead[layer], dtype=bool)


def default_conditions() -> DetectorConditions:
    """The detector conditions shared by all default training runs and the reference batch."""
    return DetectorConditions.sample(np.random.default_rng(BASE_SEED))


# ---------------------------------------------------------------------------- pileup and maps


def pileup_profile(n_ls: int, rng) -> np.ndarray:
    """Pileup per LS of one fill: levelled near 62, then decaying exponentially, ~2 % jitter.

    The levelled part lasts 30-55 % of the run; by the end of the run pileup has fallen to
    60-75 % of the levelled value (typical of a 750-LS, ~5 h run).
    """
    rng = _as_rng(rng)
    level = LEVELLED_PILEUP * (1.0 + 0.01 * rng.standard_normal())
    level_end = rng.uniform(0.30, 0.55) * n_ls
    end_ratio = rng.uniform(0.60, 0.75)
    t = np.arange(n_ls, dtype=np.float64)
    tau = max(n_ls - level_end, 1.0) / math.log(1.0 / end_ratio)
    smooth = level * np.exp(-np.clip(t - level_end, 0.0, None) / tau)
    jitter = 1.0 + _PILEUP_JITTER * rng.standard_normal(n_ls)
    return np.clip(smooth * jitter, 1.0, None)


def expected_occupancy(pileup: np.ndarray, conditions: DetectorConditions, rng) -> dict[str, np.ndarray]:
    """Expected counts per bin, layer -> (N, rows, 72) float64.

    Proportional to pileup; normalised so that the mean over live bins of the nominal shape is
    ``MEAN_COUNTS_AT_PILEUP_60[layer]`` at pileup 60. Falls with |z|, modulated by cos(phi) around
    a beam-spot direction drawn once per call, per-LS jitter of the z steepness; zero on the cross
    and on dead modules/ROCs.
    """
    rng = _as_rng(rng)
    pileup = np.asarray(pileup, dtype=np.float64).reshape(-1)
    n_ls = pileup.size
    slope_scale = 1.0 + _Z_SLOPE_JITTER * rng.standard_normal(n_ls)  # common to all layers
    beam_phi = rng.uniform(0.0, 1.0) + 0.01 * rng.standard_normal(n_ls)
    out: dict[str, np.ndarray] = {}
    for geometry in BPIX_LAYERS:
        name = geometry.name
        live = conditions.live_mask(name)
        response = conditions.gain_map(name) * live  # (rows, 72), zero on cross and dead bins
        z = _raw_z(geometry)
        phi = _raw_phi(geometry)
        nominal = response * (1.0 / np.sqrt(1.0 + (_Z_SLOPE[name] * z) ** 2))[None, :]
        norm = nominal[live].mean()
        z_profile = 1.0 / np.sqrt(1.0 + (_Z_SLOPE[name] * slope_scale[:, None] * z[None, :]) ** 2)
        phi_mod = 1.0 + _PHI_AMPLITUDE[name] * np.cos(2.0 * np.pi * (phi[None, :] - beam_phi[:, None]))
        level = MEAN_COUNTS_AT_PILEUP_60[name] * pileup / REFERENCE_PILEUP / norm
        out[name] = level[:, None, None] * phi_mod[:, :, None] * z_profile[:, None, :] * response[None, :, :]
    return out


@dataclass(frozen=True, eq=False)
class SyntheticRun:
    """One synthetic run: Poisson counts per layer plus what produced them."""

    maps: dict[str, np.ndarray]  # layer -> (N, rows, 72) int32
    pileup: np.ndarray  # (N,) float64
    conditions: DetectorConditions
    expected: dict[str, np.ndarray]  # layer -> (N, rows, 72) float64

    @property
    def n_ls(self) -> int:
        return int(self.pileup.shape[0])


def _poisson_maps(expected: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: rng.poisson(expected[name]).astype(np.int32) for name in _LAYER_NAMES}


def generate_run(n_ls: int = 750, seed: int = 0, conditions: DetectorConditions | None = None) -> SyntheticRun:
    """A run of ``n_ls`` LS with Poisson counts; conditions default to :func:`default_conditions`."""
    if conditions is None:
        conditions = default_conditions()
    rng = np.random.default_rng([_STREAM_RUN, int(seed)])
    pileup = pileup_profile(n_ls, rng)
    expected = expected_occupancy(pileup, conditions, rng)
    maps = _poisson_maps(expected, rng)
    return SyntheticRun(maps=maps, pileup=pileup, conditions=conditions, expected=expected)


# ---------------------------------------------------------------------------------- injectors


def region_mask(
    layer: str,
    phi: float,
    module_column: int,
    n_modules_z: int = 2,
    rows: int = 2,
    columns: int | None = None,
) -> np.ndarray:
    """Raw-shape bool mask of the region :func:`inject_region` would touch on ``layer``.

    Rows: ``rows`` reduced rows starting at ``floor(phi * R / rows) * rows`` (for ``rows=2``: the
    ladder containing ``phi``), clamped inside the layer; the row-fraction interval always
    contains ``phi``. Columns: ``columns`` (default ``8 * n_modules_z``) reduced columns from
    module boundary ``module_column`` (reduced column ``8 * module_column``).
    """
    geometry = layer_by_name(layer)
    n_red_rows, n_red_cols = geometry.reduced_shape
    if not 0.0 <= phi < 1.0:
        raise ValueError(f"phi must be in [0, 1), got {phi}")
    if columns is None:
        columns = MODULE_SHAPE[1] * n_modules_z
    if not 1 <= rows <= n_red_rows:
        raise ValueError(f"rows must be in 1..{n_red_rows} on {layer}, got {rows}")
    if not 0 <= module_column < _N_MODULES_Z:
        raise ValueError(f"module_column must be in 0..{_N_MODULES_Z - 1}, got {module_column}")
    col_start = MODULE_SHAPE[1] * int(module_column)
    if columns < 1 or col_start + columns > n_red_cols:
        raise ValueError(f"region of {columns} columns from module {module_column} leaves the {n_red_cols}-column reduced grid")
    row_start = min(int(math.floor(phi * n_red_rows / rows)) * rows, n_red_rows - rows)
    return _reduced_block_mask(geometry, row_start, rows, col_start, columns)


def _copy_maps(maps: dict) -> dict:
    return {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in maps.items()}


def _scale_counts(values: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Counts multiplied by ``factor`` as integers: binomial thinning below 1, Poisson above."""
    if factor == 0.0:
        return np.zeros_like(values)
    if factor == 1.0:
        return values.copy()
    counts = values.astype(np.int64)
    if factor < 1.0:
        scaled = rng.binomial(counts, factor)
    else:
        scaled = counts + rng.poisson((factor - 1.0) * counts)
    return np.clip(scaled, 0, np.iinfo(values.dtype).max).astype(values.dtype)


def inject_region(
    maps: dict,
    layers: Sequence[str],
    phi: float,
    module_column: int,
    n_modules_z: int = 2,
    factor: float = 0.0,
    rng=None,
    rows: int = 2,
    columns: int | None = None,
) -> dict:
    """New maps with the region (see :func:`region_mask`) scaled by ``factor`` on every LS.

    ``factor`` 0 = dead (exact zeros), 0 < f < 1 = inefficient (binomial thinning),
    f > 1 = hot (counts + Poisson((f - 1) * counts)). Layers not named, and bins outside the
    region, are copied unchanged. ``rng`` defaults to a fixed seed (deterministic).
    """
    if factor < 0:
        raise ValueError(f"factor must be >= 0, got {factor}")
    rng = _as_rng(rng)
    out = _copy_maps(maps)
    for layer in layers:
        if layer not in out:
            raise KeyError(f"layer {layer!r} not in maps (have {sorted(out)})")
        mask = region_mask(layer, phi, module_column, n_modules_z, rows, columns)
        arr = out[layer]
        arr[:, mask] = _scale_counts(arr[:, mask], factor, rng)
    return out


def make_low_entries(maps: dict, fraction: float = 0.3, rng=None) -> dict:
    """New maps thinned so that each layer's total is about ``fraction`` x its ``min_entries``.

    Binomial thinning per LS and layer with p = min(1, fraction * min_entries / total); LS
    already below that target are left as they are.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = _as_rng(rng)
    out = _copy_maps(maps)
    for geometry in BPIX_LAYERS:
        if geometry.name not in out:
            continue
        arr = out[geometry.name]
        totals = arr.reshape(arr.shape[0], -1).sum(axis=1, dtype=np.int64)
        p = np.minimum(1.0, fraction * geometry.min_entries / np.maximum(totals, 1))
        out[geometry.name] = rng.binomial(arr.astype(np.int64), p[:, None, None]).astype(arr.dtype)
    return out


# --------------------------------------------------------------------------- reference batch

ANOMALY_KINDS = (
    "clean",
    "dead_2x16_two_layers",
    "hot_2x16_two_layers",
    "inefficient_2x16_two_layers",
    "dead_2x16_three_layers",
    "dead_2x16_one_layer",
    "dead_module_2x8_two_layers",
    "dead_2x16_two_layers_different_places",
    "low_entries",
    "low_entries_with_dead_2x16_two_layers",
)

#: Whether the model is expected to flag an LS of each kind.
EXPECTED_FLAG = {
    "clean": False,
    "dead_2x16_two_layers": True,
    "hot_2x16_two_layers": True,
    "inefficient_2x16_two_layers": True,
    "dead_2x16_three_layers": True,
    "dead_2x16_one_layer": False,  # one layer only
    "dead_module_2x8_two_layers": False,  # smaller than the 2x16 window
    "dead_2x16_two_layers_different_places": False,
    "low_entries": False,  # not evaluated
    "low_entries_with_dead_2x16_two_layers": False,  # not evaluated despite the anomaly
}

#: The 2025F reference batch's extra kinds: a two-layer dead region (flagged on its own) in an LS
#: failing one OMS filter (values set by make_reference_batch_2025f): never flagged.
OMS_FILTER_FAILURES = {
    **{
        f"oms_{bit}_false": (f"oms_lumisection_info__{bit}", False)
        for bit in (
            "cms_active",
            "beams_stable",
            "bpix_ready",
            "fpix_ready",
            "tibtid_ready",
            "tob_ready",
            "tecp_ready",
            "tecm_ready",
        )
    },
    "oms_pileup_below_25": ("oms_lumisection_info__pileup", 20.0),
    "oms_pileup_at_25": ("oms_lumisection_info__pileup", 25.0),
    "oms_zerobias_rate_below_5": ("hlt_zerobias__rate", 1.0),
    "oms_zerobias_rate_at_5": ("hlt_zerobias__rate", 5.0),
}
BASE_KIND = {kind: "dead_2x16_two_layers" for kind in OMS_FILTER_FAILURES}
EXPECTED_FLAG.update({kind: False for kind in OMS_FILTER_FAILURES})

#: kind -> (number of layers, modules along z, factor, same place?, low entries?)
_KIND_RECIPES = {
    "dead_2x16_two_layers": (2, 2, 0.0, True, False),
    "hot_2x16_two_layers": (2, 2, 3.0, True, False),
    "inefficient_2x16_two_layers": (2, 2, 0.5, True, False),
    "dead_2x16_three_layers": (3, 2, 0.0, True, False),
    "dead_2x16_one_layer": (1, 2, 0.0, True, False),
    "dead_module_2x8_two_layers": (2, 1, 0.0, True, False),
    "dead_2x16_two_layers_different_places": (2, 2, 0.0, False, False),
    "low_entries_with_dead_2x16_two_layers": (2, 2, 0.0, True, True),
}
_BATCH_PILEUP = (40.0, 65.0)
_MIN_PHI_SEPARATION = 0.25  # "different places": > any ladder width, no overlap on BPix1's grid


def _free_placement(
    rng: np.random.Generator,
    layers: Sequence[str],
    n_modules_z: int,
    conditions: DetectorConditions,
    avoid_phi: float | None = None,
) -> tuple[float, int]:
    """Random (phi, module_column) whose region misses every dead bin of ``layers``."""
    for _ in range(10_000):
        phi = float(rng.uniform(0.0, 1.0))
        column = int(rng.integers(0, _N_MODULES_Z - n_modules_z, endpoint=True))
        if avoid_phi is not None:
            distance = abs(phi - avoid_phi)
            if min(distance, 1.0 - distance) < _MIN_PHI_SEPARATION:
                continue
        if not any((region_mask(layer, phi, column, n_modules_z) & conditions.dead[layer]).any() for layer in layers):
            return phi, column
    raise RuntimeError("no placement free of dead modules found")


def make_reference_batch(
    seed: int,
    n_per_kind: int = 4,
    conditions: DetectorConditions | None = None,
    layers: Sequence[str] = _LAYER_NAMES,
    extra_kinds: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """A batch of ``n_per_kind`` LS of each kind in :data:`ANOMALY_KINDS`, grouped by kind.

    Keys: ``BPix1``..``BPix4`` int32 (N, rows, 72), ``expected_flag`` (N,) bool, ``kind`` (N,)
    unicode, ``pileup`` (N,) float64. Pileup uniform in 40-65; regions at random phi / module
    column, clear of the dead modules of ``conditions`` (default :func:`default_conditions`).
    ``layers``: the layers anomalies are placed in (default all four; all four are returned);
    ``extra_kinds``: further kinds (one LS each, after the others) with the maps of their
    :data:`BASE_KIND` (the caller sets what else makes them differ).
    """
    if conditions is None:
        conditions = default_conditions()
    rng = np.random.default_rng([_STREAM_BATCH, int(seed)])
    kind = np.concatenate([np.repeat(np.array(ANOMALY_KINDS), n_per_kind), np.array(extra_kinds, dtype=str)]).astype(str)
    n_ls = kind.size
    pileup = rng.uniform(*_BATCH_PILEUP, size=n_ls)
    maps = _poisson_maps(expected_occupancy(pileup, conditions, rng), rng)

    # Each anomalous LS gets its own region, so injection runs per anomalous LS (not per clean LS).
    for i in range(n_ls):
        name = BASE_KIND.get(str(kind[i]), str(kind[i]))
        if name == "clean":
            continue
        one = {layer: maps[layer][i : i + 1] for layer in layers}
        if name in _KIND_RECIPES:
            n_layers, n_z, factor, same_place, low = _KIND_RECIPES[name]
            chosen = [layers[j] for j in np.sort(rng.choice(len(layers), size=n_layers, replace=False))]
            if same_place:
                phi, column = _free_placement(rng, chosen, n_z, conditions)
                one = inject_region(one, chosen, phi, column, n_z, factor, rng)
            else:
                phi_a, col_a = _free_placement(rng, chosen[:1], n_z, conditions)
                phi_b, col_b = _free_placement(rng, chosen[1:], n_z, conditions, avoid_phi=phi_a)
                one = inject_region(one, chosen[:1], phi_a, col_a, n_z, factor, rng)
                one = inject_region(one, chosen[1:], phi_b, col_b, n_z, factor, rng)
        else:
            low = name == "low_entries"
        if low:
            one = make_low_entries(one, rng=rng)
        for layer in layers:
            maps[layer][i] = one[layer][0]

    batch: dict[str, np.ndarray] = dict(maps)
    batch["expected_flag"] = np.array([EXPECTED_FLAG[str(k)] for k in kind], dtype=bool)
    batch["kind"] = kind
    batch["pileup"] = pileup
    return batch


# ----------------------------------------------------------------------------------- summary


def summary(run: SyntheticRun) -> str:
    """Human-readable statistics of a run: occupancy at pileup ~60, zeros, totals vs min_entries."""
    lines = [f"{run.n_ls} LS, pileup {run.pileup.min():.1f}..{run.pileup.max():.1f}"]
    near_60 = np.abs(run.pileup - REFERENCE_PILEUP) < 3.0
    for geometry in BPIX_LAYERS:
        name = geometry.name
        counts = run.maps[name]
        live = run.conditions.live_mask(name)
        dead = np.asarray(run.conditions.dead[name], dtype=bool)
        per_ls_mean = counts[:, live].mean(axis=1)
        scaled = float(np.mean(per_ls_mean * REFERENCE_PILEUP / run.pileup))
        target = MEAN_COUNTS_AT_PILEUP_60[name]
        at_60 = float(per_ls_mean[near_60].mean()) if near_60.any() else float("nan")
        totals = counts.reshape(run.n_ls, -1).sum(axis=1, dtype=np.int64)
        lines.append(
            f"{name}: mean/bin at pileup 60 = {scaled:.0f} (LS with |pu-60|<3: {at_60:.0f}; "
            f"target {target:.0f}, {100 * (scaled / target - 1):+.1f} %); "
            f"dead bins {int(dead.sum())} all zero={not counts[:, dead].any()}; "
            f"cross zero={not counts[:, _cross_mask(geometry)].any()}; "
            f"total min/median {totals.min():.3g}/{np.median(totals):.3g} "
            f"vs min_entries {geometry.min_entries:.3g}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - demo
    import time

    start = time.perf_counter()
    demo = generate_run()
    print(f"generate_run(750): {time.perf_counter() - start:.2f} s")
    print(summary(demo))
    start = time.perf_counter()
    reference = make_reference_batch(seed=0)
    print(f"make_reference_batch(0): {time.perf_counter() - start:.2f} s, {reference['kind'].size} LS")
    for kind_name in ANOMALY_KINDS:
        rows = reference["kind"] == kind_name
        totals = {g.name: int(reference[g.name][rows].reshape(rows.sum(), -1).sum(axis=1).min()) for g in BPIX_LAYERS}
        print(f"  {kind_name:40s} flag={EXPECTED_FLAG[kind_name]!s:5s} min totals {totals}")


# ------------------------------------------------------------------------------ OMS metadata

#: HLT ZeroBias rate (Hz) at pileup 60 in the synthetic runs; proportional to pileup.
ZEROBIAS_RATE_AT_PILEUP_60 = 40.0


def oms_metadata(pileup: np.ndarray, run_number: int = 398000, first_lumisection: int = 1) -> dict[str, np.ndarray]:
    """The OMS metadata inputs of the 2025F deployment for LS of the given pileup, all passing.

    Keys are the V2 input names DIALS sends (``oms_lumisection_info__pileup``, ...): run and
    LS numbers (int32), pileup (float32), the eight DCS bits (all true) and
    ``hlt_zerobias__rate`` (float32, proportional to pileup). Deterministic.
    """
    pileup = np.asarray(pileup, dtype=np.float64).reshape(-1)
    n_ls = pileup.size
    out = {
        "oms_lumisection_info__run_number": np.full(n_ls, run_number, dtype=np.int32),
        "oms_lumisection_info__lumisection_number": np.arange(first_lumisection, first_lumisection + n_ls, dtype=np.int32),
        "oms_lumisection_info__pileup": pileup.astype(np.float32),
    }
    for bit in (
        "cms_active",
        "beams_stable",
        "bpix_ready",
        "fpix_ready",
        "tibtid_ready",
        "tob_ready",
        "tecp_ready",
        "tecm_ready",
    ):
        out[f"oms_lumisection_info__{bit}"] = np.ones(n_ls, dtype=bool)
    out["hlt_zerobias__rate"] = (ZEROBIAS_RATE_AT_PILEUP_60 * pileup / REFERENCE_PILEUP).astype(np.float32)
    return out


LAYERS_2025F = ("BPix2", "BPix3", "BPix4")


def make_reference_batch_2025f(
    seed: int, n_per_kind: int = 4, conditions: DetectorConditions | None = None
) -> dict[str, np.ndarray]:
    """The 2025F deployment's reference batch: BPix2-4 maps, OMS metadata, labels.

    Every kind of :data:`ANOMALY_KINDS` with anomalies placed among BPix2-4 (``n_per_kind``
    each, all passing the OMS filters), then one LS per :data:`OMS_FILTER_FAILURES` kind: a
    dead 2x16 region in two layers (flagged on its own) with one OMS value failing its filter
    (pileup and rate exactly at the threshold fail too: the cuts are strict).
    Keys: the maps, every metadata input named as the V2 input (``oms_lumisection_info__pileup``,
    ...), ``kind``, ``expected_flag``, ``pileup``.
    """
    batch = make_reference_batch(seed, n_per_kind, conditions, layers=LAYERS_2025F, extra_kinds=tuple(OMS_FILTER_FAILURES))
    del batch["BPix1"]  # not an input of the 2025F deployment
    metadata = oms_metadata(batch["pileup"], run_number=398765)
    for kind, (name, value) in OMS_FILTER_FAILURES.items():
        metadata[name][batch["kind"] == kind] = value
    batch.update(metadata)
    return batch
