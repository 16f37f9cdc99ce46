"""The PixelNMF model: the pipeline stages chained over the four barrel layers.

The persisted state holds only numpy arrays and Python builtins (no scikit-learn object), so a
model file loads wherever numpy and this package are importable.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from . import clustering, combination, entries, flagging, preprocessing, reconstruction

FORMAT_VERSION = 1
#: Lumisections per internal block: keeps temporaries in cache; no effect on results.
CHUNK_SIZE = 64
#: The maps are processed in float32 (half the memory traffic of float64); the NNLS algebra
#: on the few components runs in float64.
COMPUTE_DTYPE = np.float32
#: Counts arrive as INT32; larger values would also overflow the float32 maps.
MAX_COUNT = int(np.iinfo(np.int32).max)

DEFAULT_PARAMETERS = {
    "loss_threshold": 0.04,
    "window": (2, 16),
    "max_misses": 1,
    "clip": 5.0,
    "min_layers": 2,
    "flag_blocks": ((1, 8), (2, 4)),
    "empty_fraction": 0.9,
}


class InputError(ValueError):
    """The input maps do not match what the model was trained for (names, shapes, values)."""


@dataclass
class LayerResult:
    """Intermediate maps of one layer, kept only when asked for (reports, regression tests)."""

    preprocessed: np.ndarray
    reconstruction: np.ndarray
    loss: np.ndarray
    clustered: np.ndarray


@dataclass
class Evaluation:
    flag: np.ndarray  # (N,) bool
    metric: np.ndarray  # (N,) float32, bins inside flagging blocks
    evaluated: np.ndarray  # (N,) bool, passed the minimum-entries filter
    combined: np.ndarray | None = None  # (N, R, C) bool on the first layer's grid
    layers: dict[str, LayerResult] = field(default_factory=dict)


class _StageTimer:
    def __init__(self, totals: dict | None):
        self.totals = totals

    @contextmanager
    def __call__(self, stage: str):
        if self.totals is None:
            yield
            return
        start = time.perf_counter()
        yield
        self.totals[stage] = self.totals.get(stage, 0.0) + time.perf_counter() - start


class PixelNMF:
    """Per-layer NMF anomaly model for the pixel-barrel occupancy maps.

    ``layers``: one dict per layer, in input order, with ``name`` (str), ``shape`` (rows, cols of
    the raw map), ``kept_rows`` / ``kept_columns`` (int arrays: the map without its empty cross),
    ``components`` (k x d, unit mean rows), ``reference`` (reduced map of the training mean),
    ``zero_fraction`` (reduced map: fraction of training LS with an empty bin) and
    ``min_entries`` (float).
    """

    def __init__(self, layers: list[dict], **parameters):
        unknown = set(parameters) - set(DEFAULT_PARAMETERS)
        if unknown:
            raise TypeError(f"unknown parameters {sorted(unknown)}; known: {sorted(DEFAULT_PARAMETERS)}")
        self.format_version = FORMAT_VERSION
        self.parameters = {**DEFAULT_PARAMETERS, **parameters}
        self.parameters["window"] = tuple(int(v) for v in self.parameters["window"])
        self.parameters["flag_blocks"] = tuple(tuple(int(v) for v in block) for block in self.parameters["flag_blocks"])
        self.layers = [self._plain_layer(layer) for layer in layers]

    @staticmethod
    def _plain_layer(layer: dict) -> dict:
        return {
            "name": str(layer["name"]),
            "shape": tuple(int(v) for v in layer["shape"]),
            "kept_rows": np.asarray(layer["kept_rows"], dtype=np.int64),
            "kept_columns": np.asarray(layer["kept_columns"], dtype=np.int64),
            "components": np.asarray(layer["components"], dtype=np.float64),
            "reference": np.asarray(layer["reference"], dtype=np.float64),
            "zero_fraction": np.asarray(layer["zero_fraction"], dtype=np.float64),
            "min_entries": float(layer["min_entries"]),
        }

    # -- what the model expects -------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return [layer["name"] for layer in self.layers]

    @property
    def input_shapes(self) -> dict[str, tuple[int, int]]:
        """Per-lumisection shape of each input map."""
        return {layer["name"]: layer["shape"] for layer in self.layers}

    @property
    def grid_shape(self) -> tuple[int, int]:
        """The combined map lives on the first layer's reduced grid."""
        first = self.layers[0]
        return (len(first["kept_rows"]), len(first["kept_columns"]))

    @property
    def loss_mask(self) -> np.ndarray:
        """Per bin of the combined grid: in how many layers it was empty in most training LS."""
        # Derived from the persisted state once per process (evaluate uses it for every block).
        mask = self.__dict__.get("_loss_mask_cache")
        if mask is None:
            empty = [layer["zero_fraction"] >= self.parameters["empty_fraction"] for layer in self.layers]
            mask = combination.loss_mask(empty, self.grid_shape)
            self.__dict__["_loss_mask_cache"] = mask
        return mask

    # -- evaluation -------------------------------------------------------------------------
    def predict(self, X: dict) -> np.ndarray:
        """Flags, (N,) bool, for a dict {input name: (N, rows, cols) counts}."""
        return self.evaluate(X).flag

    def predict_with_score(self, X: dict) -> tuple[np.ndarray, np.ndarray]:
        """Flags (N,) bool and the anomaly score (N,) float32 from one pass."""
        result = self.evaluate(X)
        return result.flag, result.metric

    def evaluate(self, X: dict, keep_intermediates: bool = False, stage_times: dict | None = None) -> Evaluation:
        """Run every stage; ``stage_times`` (a dict) accumulates seconds per stage when given."""
        maps = self.validate(X)
        n_ls = len(next(iter(maps.values())))
        timer = _StageTimer(stage_times)
        parts = [self._evaluate_chunk({name: array[start : start + CHUNK_SIZE] for name, array in maps.items()}, keep_intermediates, timer)
                 for start in range(0, n_ls, CHUNK_SIZE)] or [self._evaluate_chunk(maps, keep_intermediates, timer)]  # fmt: skip
        if len(parts) == 1:
            return parts[0]
        layers = {
            name: LayerResult(*(np.concatenate([getattr(part.layers[name], item) for part in parts]) for item in LayerResult.__dataclass_fields__))
            for name in parts[0].layers
        }
        return Evaluation(
            flag=np.concatenate([part.flag for part in parts]),
            metric=np.concatenate([part.metric for part in parts]),
            evaluated=np.concatenate([part.evaluated for part in parts]),
            combined=np.concatenate([part.combined for part in parts]) if keep_intermediates else None,
            layers=layers,
        )

    def _evaluate_chunk(self, maps: dict, keep_intermediates: bool, timer: _StageTimer) -> Evaluation:
        params = self.parameters
        n_ls = len(next(iter(maps.values())))
        with timer("entries"):
            evaluated = entries.has_enough_entries([maps[layer["name"]] for layer in self.layers], [layer["min_entries"] for layer in self.layers])
        clustered_layers, details = [], {}
        for layer, solver in zip(self.layers, self._solvers, strict=True):
            with timer("preprocessing"):
                reduced = preprocessing.remove_cross(maps[layer["name"]], layer["kept_rows"], layer["kept_columns"])
                preprocessed = preprocessing.normalise(reduced, layer["reference"], dtype=COMPUTE_DTYPE)
                flat = preprocessed.reshape(n_ls, int(np.prod(preprocessed.shape[1:])))  # not -1: N may be 0
            with timer("reconstruction"):
                recon = solver.reconstruct(preprocessing.transform_input(flat, params["clip"]))
            with timer("clustering"):
                loss = clustering.loss_map(flat, recon).reshape(preprocessed.shape)
                clustered = clustering.cluster_loss(loss, params["loss_threshold"], params["window"], params["max_misses"])
            clustered_layers.append(clustered)
            if keep_intermediates:
                details[layer["name"]] = LayerResult(preprocessed, recon.reshape(preprocessed.shape), loss, clustered)
        with timer("combination"):
            combined = combination.combine_layers(clustered_layers, self.grid_shape, self.loss_mask, params["min_layers"])
            combined &= evaluated[:, None, None]
        with timer("flagging"):
            flag, metric = flagging.flag_and_score(combined, params["flag_blocks"])
        return Evaluation(flag, metric, evaluated, combined if keep_intermediates else None, details)

    @property
    def _solvers(self) -> list[reconstruction.FaceSolver]:
        # Derived from the components once per process; never persisted.
        solvers = self.__dict__.get("_solver_cache")
        if solvers is None:
            solvers = [reconstruction.FaceSolver(layer["components"]) for layer in self.layers]
            self.__dict__["_solver_cache"] = solvers
        return solvers

    def validate(self, X: dict) -> dict[str, np.ndarray]:
        """Check names, shapes and values; returns {name: (N, rows, cols) array}."""
        if not isinstance(X, dict):
            raise InputError(f"expected a dict of input maps keyed by {self.input_names}, got {type(X).__name__}")
        missing = [name for name in self.input_names if name not in X]
        unknown = [name for name in X if name not in self.input_names]
        if missing or unknown:
            raise InputError(f"inputs do not match the model: missing {missing}, unknown {unknown}; expected {self.input_names}")
        maps, sizes = {}, {}
        for name, shape in self.input_shapes.items():
            array = np.asarray(X[name])
            if array.ndim != 3 or array.shape[1:] != shape:
                raise InputError(f"input {name!r}: expected shape (N, {shape[0]}, {shape[1]}), received {array.shape}")
            if array.dtype.kind not in "iuf":
                raise InputError(f"input {name!r}: expected numeric counts, received dtype {array.dtype}")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise InputError(f"input {name!r}: counts must be finite, received NaN or infinity")
            if array.dtype.kind in "if" and (array < 0).any():
                raise InputError(f"input {name!r}: counts must be non-negative, received a negative value")
            if array.size and array.max() > MAX_COUNT:
                raise InputError(f"input {name!r}: counts must not exceed {MAX_COUNT} (INT32), received {array.max()}")
            maps[name] = array
            sizes[name] = array.shape[0]
        if len(set(sizes.values())) > 1:
            raise InputError(f"inputs have different numbers of lumisections: {sizes}")
        return maps

    # -- persistence: plain state only ------------------------------------------------------
    def __getstate__(self) -> dict:
        return {"format_version": self.format_version, "parameters": self.parameters, "layers": self.layers}

    def __setstate__(self, state: dict) -> None:
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"model file format {state.get('format_version')!r} is not supported by this pixelnmf "
                f"(format {FORMAT_VERSION}); retrain or sync the package"
            )
        self.format_version = state["format_version"]
        self.parameters = state["parameters"]
        self.layers = state["layers"]
