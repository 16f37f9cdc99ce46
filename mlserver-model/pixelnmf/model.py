"""The PixelNMF model: the pipeline stages chained over the four barrel layers.

The persisted state holds only numpy arrays and Python builtins (no scikit-learn object), so a
model file loads wherever numpy and this package are importable.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from . import clustering, combination, compiled, datatypes, entries, flagging, preprocessing, reconstruction

#: 2: parameters carry ``metadata_inputs`` and ``filters`` (format 1 files load without them).
FORMAT_VERSION = 2
SUPPORTED_FORMAT_VERSIONS = (1, 2)
#: Lumisections per internal block: bounds the temporaries (peak ~19 MB for 750 LS) while
#: keeping the per-call overhead of the numpy passes small (measured best of 16..384); no
#: effect on results.
CHUNK_SIZE = 128
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
    # Metadata inputs the deployment's template declares (InputMetadata): {V2 input name
    # "<Name>__<Attribute>": V2 datatype}. Each is required, one value per LS.
    "metadata_inputs": {},
    # Lumisection filters on metadata inputs: ({"input": name, "operator": one of
    # FILTER_OPERATORS, "value": bool or float}, ...). An LS failing any is not evaluated.
    "filters": (),
}
#: Comparison operators a filter may use (data in the model file, not code).
FILTER_OPERATORS = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}
#: How ``evaluate`` runs stages 1-3: "compiled" (the fused loop of ``compiled``, when numba is
#: importable, the maps are INT32 as the handler decodes them and rows fit one word), "numpy"
#: (the stage functions) or "auto" (compiled where it applies, else numpy). Same results.
ENGINES = ("auto", "compiled", "numpy")
#: Metadata datatypes the model accepts and the numpy dtype kinds each may arrive as.
METADATA_KINDS = {"BOOL": "b", "INT32": "iu", "INT64": "iu", "FP32": "iuf", "FP64": "iuf"}


class InputError(ValueError):
    """The input maps do not match what the model was trained for (names, shapes, values)."""


def _check_values(name: str, array: np.ndarray) -> int | None:
    """Counts must be finite, non-negative and within INT32 (InputError naming the input).

    Returns an upper bound of the counts when one came for free (int32 input), else None.
    """
    if not array.size:
        return None
    if array.dtype == np.int32:
        # One pass: the OR of all counts is negative iff one is, and bounds them from above.
        bits = int(np.bitwise_or.reduce(array, axis=None))
        if bits < 0:
            raise InputError(f"input {name!r}: counts must be non-negative, received a negative value")
        return bits
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(f"input {name!r}: counts must be finite, received NaN or infinity")
    if array.dtype.kind in "if" and array.min() < 0:
        raise InputError(f"input {name!r}: counts must be non-negative, received a negative value")
    if array.dtype.itemsize > 4 or array.dtype.kind == "f" or array.dtype == np.uint32:
        if array.max() > MAX_COUNT:
            raise InputError(f"input {name!r}: counts must not exceed {MAX_COUNT} (INT32), received {array.max()}")
    return None


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
    evaluated: np.ndarray  # (N,) bool, passed the minimum-entries filter and every metadata filter
    combined: np.ndarray | None = None  # (N, R, C) bool on the first layer's grid
    layers: dict[str, LayerResult] = field(default_factory=dict)
    passes_filters: np.ndarray | None = None  # (N,) bool, passed every metadata filter


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
        self.parameters["metadata_inputs"] = {
            str(name): str(datatype) for name, datatype in dict(self.parameters["metadata_inputs"]).items()
        }
        self.parameters["filters"] = tuple(self._plain_filter(item) for item in self.parameters["filters"])
        self.layers = [self._plain_layer(layer) for layer in layers]

    def _plain_filter(self, item: dict) -> dict:
        name, operator, value = str(item["input"]), str(item["operator"]), item["value"]
        declared = self.parameters["metadata_inputs"]
        if name not in declared:
            raise ValueError(f"filter on {name!r}: not a declared metadata input ({sorted(declared)})")
        if operator not in FILTER_OPERATORS:
            raise ValueError(f"filter on {name!r}: operator {operator!r} unknown; known: {sorted(FILTER_OPERATORS)}")
        if declared[name] not in METADATA_KINDS:
            raise ValueError(
                f"metadata input {name!r}: datatype {declared[name]!r} not supported; supported: {sorted(METADATA_KINDS)}"
            )
        return {"input": name, "operator": operator, "value": bool(value) if declared[name] == "BOOL" else float(value)}

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
    def metadata_inputs(self) -> dict[str, str]:
        """{metadata input name: V2 datatype}: required next to the maps (empty: none)."""
        return self.parameters.get("metadata_inputs", {})

    @property
    def filters(self) -> tuple[dict, ...]:
        return self.parameters.get("filters", ())

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

    def evaluate(
        self, X: dict, keep_intermediates: bool = False, stage_times: dict | None = None, engine: str = "auto"
    ) -> Evaluation:
        """Run every stage; ``stage_times`` (a dict) accumulates seconds per stage when given;
        ``engine`` one of ENGINES (intermediate maps are only kept by the numpy stages)."""
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r} unknown; known: {ENGINES}")
        timer = _StageTimer(stage_times)
        with timer("validation"):
            # Names, shapes and dtypes here; the values are checked block by block while the
            # block is in cache anyway (see _evaluate_chunk and compiled).
            maps, metadata = self.validate(X, with_metadata=True, check_values=False)
        n_ls = len(next(iter(maps.values())))
        with timer("filters"):
            passes_filters = self.passes_filters(metadata, n_ls)
        if engine != "numpy" and not keep_intermediates:
            why_not = self.compiled_unavailable(maps)
            if why_not is None:
                return self._evaluate_compiled(maps, passes_filters, timer)
            if engine == "compiled":
                raise RuntimeError(f"the compiled engine cannot run: {why_not}")
        elif engine == "compiled":
            raise ValueError("the compiled engine keeps no intermediate maps; use engine='numpy'")
        with reconstruction.single_threaded_blas() as use_blas:
            parts = [self._evaluate_chunk({name: array[start : start + CHUNK_SIZE] for name, array in maps.items()},
                                          passes_filters[start : start + CHUNK_SIZE], keep_intermediates, timer, use_blas)
                     for start in range(0, n_ls, CHUNK_SIZE)] or [self._evaluate_chunk(maps, passes_filters, keep_intermediates, timer, use_blas)]  # fmt: skip
        if len(parts) == 1:
            return parts[0]
        layers = {
            name: LayerResult(
                *(
                    np.concatenate([getattr(part.layers[name], item) for part in parts])
                    for item in LayerResult.__dataclass_fields__
                )
            )
            for name in parts[0].layers
        }
        return Evaluation(
            flag=np.concatenate([part.flag for part in parts]),
            metric=np.concatenate([part.metric for part in parts]),
            evaluated=np.concatenate([part.evaluated for part in parts]),
            combined=np.concatenate([part.combined for part in parts]) if keep_intermediates else None,
            layers=layers,
            passes_filters=passes_filters,
        )

    def passes_filters(self, metadata: dict[str, np.ndarray], n_ls: int) -> np.ndarray:
        """(N,) bool: the LS passes every metadata filter (all True without filters)."""
        passing = np.ones(n_ls, dtype=bool)
        for item in self.filters:
            passing &= FILTER_OPERATORS[item["operator"]](metadata[item["input"]], item["value"])
        return passing

    def compiled_unavailable(self, maps: dict) -> str | None:
        """Why the compiled engine cannot evaluate these (validated) maps, or None when it can."""
        if not compiled.AVAILABLE:
            return "numba is not importable"
        if not self._packed:
            return "a layer's reduced rows do not fit one 64-bit word"
        for (index, _), layer in zip(self._preparations, self.layers, strict=True):
            if np.any(np.diff(index) <= 0):
                return f"layer {layer['name']!r}: kept rows or columns are not in increasing order"
        for name in self.input_names:  # the maps; metadata inputs are not the loop's business
            dtype = np.asarray(maps[name]).dtype
            if dtype != np.int32:
                return f"input {name!r} holds {dtype}, not int32 counts"
        return None

    def warm_up(self) -> None:
        """Compile the fused loop on one empty LS (seconds, once per process) rather than within
        the first request. Nothing happens where the loop cannot run.

        Synchronous on purpose: compiling in a background thread while the numpy stages answer
        deadlocked (the compile thread imported a scipy extension, holding the GIL, while
        threadpoolctl's library scan in the main thread held the loader lock and waited for it).
        """
        zeros = {name: np.zeros((1, *shape), dtype=np.int32) for name, shape in self.input_shapes.items()}
        for name, datatype in self.metadata_inputs.items():
            zeros[name] = np.zeros(1, dtype=datatypes.numpy_dtype(datatype))
        if self.compiled_unavailable(zeros) is None:
            self.evaluate(zeros, engine="compiled")

    def _evaluate_compiled(self, maps: dict, passes_filters: np.ndarray, timer: _StageTimer) -> Evaluation:
        """Stages 1-3 fused per layer and LS (``compiled.layer_loss_bits``), then clustering,
        combination and flagging per LS on the packed rows (``compiled.cluster_combine_flag``)."""
        params = self.parameters
        n_ls = len(passes_filters)
        evaluated = passes_filters.copy()
        loss_words = []
        for layer, prepared in zip(self.layers, self._compiled_inputs, strict=True):
            name = layer["name"]
            array = maps[name]
            raw = np.ascontiguousarray(array).reshape(n_ls, array.shape[1] * array.shape[2])
            with timer("fused stages 1-3"):
                words, totals, negative = compiled.layer_loss_bits(
                    raw, *prepared, params["clip"], params["loss_threshold"], len(layer["kept_rows"]), len(layer["kept_columns"])
                )
            if negative.any():
                raise InputError(f"input {name!r}: counts must be non-negative, received a negative value")
            with timer("entries"):
                evaluated &= totals > layer["min_entries"]
            loss_words.append(words)
        if params["max_misses"] > compiled.MAX_MISSES_COMPILED:
            flag, metric = self._packed_stages_numpy(loss_words, evaluated, timer)
            return Evaluation(flag, metric, evaluated, None, {}, passes_filters)
        with timer("clustering, combination, flagging"):
            offsets, first_rows, last_rows, required, blocks = self._compiled_grid
            flag, metric = compiled.cluster_combine_flag(
                np.concatenate(loss_words, axis=1), offsets, self.grid_shape[1], params["window"], params["max_misses"],
                first_rows, last_rows, required, blocks, evaluated,
            )  # fmt: skip
        return Evaluation(flag, metric, evaluated, None, {}, passes_filters)

    def _packed_stages_numpy(self, loss_words: list, evaluated: np.ndarray, timer: _StageTimer) -> tuple[np.ndarray, np.ndarray]:
        """Clustering, combination and flagging of packed loss rows with numpy, in blocks of
        CHUNK_SIZE LS (their temporaries then stay in the cache)."""
        params = self.parameters
        n_ls = len(evaluated)
        flag = np.zeros(n_ls, dtype=bool)
        metric = np.zeros(n_ls, dtype=np.float32)
        for start in range(0, n_ls, CHUNK_SIZE):
            block = slice(start, start + CHUNK_SIZE)
            with timer("clustering"):
                clustered_layers = [
                    clustering.cluster_packed(words[block], len(layer["kept_columns"]), params["window"], params["max_misses"])
                    for layer, words in zip(self.layers, loss_words, strict=True)
                ]
            flag[block], metric[block], _ = self._combine_and_flag_words(clustered_layers, evaluated[block], timer)
        return flag, metric

    def _combine_and_flag_words(
        self, clustered_layers: list, evaluated: np.ndarray, timer: _StageTimer
    ) -> tuple[np.ndarray, ...]:
        """Stages 4 and 5 on the layers' packed clustered rows: (flag, metric, combined words)."""
        n_rows, n_columns = self.grid_shape
        with timer("combination"):
            combined = combination.combine_words(clustered_layers, n_rows, self._required_layers)
            combined[~evaluated] = 0
        with timer("flagging"):
            flag, metric = flagging.flag_and_score_words(combined, n_columns, self.parameters["flag_blocks"])
        return flag, metric, combined

    @property
    def _compiled_grid(self) -> tuple[np.ndarray, ...]:
        """What ``compiled.cluster_combine_flag`` needs of the layers and the grid (once per
        process): row offsets of the layers' words, the source rows overlapping each grid row,
        the packed required-layer masks and the flagging blocks."""
        found = self.__dict__.get("_grid_cache")
        if found is None:
            n_grid_rows = self.grid_shape[0]
            sizes = [len(layer["kept_rows"]) for layer in self.layers]
            first_rows, last_rows = [], []
            for n_source in sizes:
                overlap = combination.overlap_matrix(n_grid_rows, n_source)
                first = overlap.argmax(axis=1)
                first_rows.append(first)
                last_rows.append(first + overlap.sum(axis=1) - 1)  # the overlapping rows are contiguous
            found = (
                np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                np.array(first_rows, dtype=np.int64),
                np.array(last_rows, dtype=np.int64),
                np.array(self._required_layers, dtype=np.uint64),
                np.array(self.parameters["flag_blocks"], dtype=np.int64).reshape(-1, 2),
            )
            self.__dict__["_grid_cache"] = found
        return found

    @property
    def _compiled_inputs(self) -> list[tuple]:
        """Per layer, what the fused loop needs besides the maps (once per process)."""
        found = self.__dict__.get("_compiled_cache")
        if found is None:
            found = [
                (compiled.contiguous_runs(index), inverse, solver._components_f32, solver._inverses, solver.full_face)
                for solver, (index, inverse) in zip(self._solvers, self._preparations, strict=True)
            ]
            self.__dict__["_compiled_cache"] = found
        return found

    def _evaluate_chunk(
        self, maps: dict, passes_filters: np.ndarray, keep_intermediates: bool, timer: _StageTimer, use_blas: bool
    ) -> Evaluation:
        params = self.parameters
        n_ls = len(next(iter(maps.values())))
        flats, bounds = {}, {}
        with timer("validation"):
            for name, array in maps.items():
                flats[name] = array.reshape(n_ls, array.shape[1] * array.shape[2])
                bounds[name] = _check_values(name, flats[name])
        with timer("entries"):
            names = [layer["name"] for layer in self.layers]
            evaluated = entries.has_enough_entries(
                [flats[name] for name in names], [layer["min_entries"] for layer in self.layers], [bounds[name] for name in names]
            )
            evaluated &= passes_filters
        clustered_layers, details = [], {}
        packed = self._packed
        for layer, solver, (index, inverse) in zip(self.layers, self._solvers, self._preparations, strict=True):
            reduced_shape = (n_ls, len(layer["kept_rows"]), len(layer["kept_columns"]))
            with timer("preprocessing"):
                # The unit-mean scale stays unapplied: it is folded into the products and the
                # loss threshold, which saves a pass over the maps (and the NMF input is never
                # materialised unless a bin is clipped).
                ratio, empty, n_empty, scale = preprocessing.prepare_unscaled(flats[layer["name"]], index, inverse)
            with timer("reconstruction"):
                weights = solver.weights_of_prepared(ratio, empty, n_empty, scale, params["clip"], use_blas, inverse > 0)
                # recon / scale: the reconstruction on the scale of the unscaled ratio.
                recon = solver.reconstruct_from_weights(weights / scale.astype(np.float64)[:, None], use_blas)
            with timer("clustering"):
                loss = np.subtract(ratio, recon, out=recon)  # = loss / scale^2
                np.square(loss, out=loss)
                loss = loss.reshape(reduced_shape)
                threshold = (params["loss_threshold"] / np.square(scale.astype(np.float64))).astype(COMPUTE_DTYPE)[:, None, None]
                if packed:
                    clustered = clustering.cluster_words(loss, threshold, params["window"], params["max_misses"])
                else:
                    clustered = clustering.cluster_loss(loss, threshold, params["window"], params["max_misses"])
            if keep_intermediates:
                scale_3d = scale[:, None, None]
                preprocessed = ratio.reshape(reduced_shape) * scale_3d
                layer_recon = solver.reconstruct_from_weights(weights, use_blas).reshape(reduced_shape)
                layer_loss = np.square(preprocessed - layer_recon)
            clustered_layers.append(clustered)
            if keep_intermediates:
                clustered_map = clustering.unpack_rows(clustered, reduced_shape[2]) if packed else clustered
                details[layer["name"]] = LayerResult(preprocessed, layer_recon, layer_loss, clustered_map)
        if packed:
            flag, metric, combined = self._combine_and_flag_words(clustered_layers, evaluated, timer)
            combined = clustering.unpack_rows(combined, self.grid_shape[1]) if keep_intermediates else None
        else:
            with timer("combination"):
                combined = combination.combine_layers(clustered_layers, self.grid_shape, self.loss_mask, params["min_layers"])
                combined &= evaluated[:, None, None]
            with timer("flagging"):
                flag, metric = flagging.flag_and_score(combined, params["flag_blocks"])
        return Evaluation(flag, metric, evaluated, combined if keep_intermediates else None, details, passes_filters)

    @property
    def _packed(self) -> bool:
        """Every layer's reduced map has the grid's columns, at most 64: one uint64 per row."""
        n_columns = self.grid_shape[1]
        return clustering.packable(n_columns) and all(len(layer["kept_columns"]) == n_columns for layer in self.layers)

    @property
    def _required_layers(self) -> list[np.ndarray]:
        found = self.__dict__.get("_required_cache")
        if found is None:
            found = combination.required_layers(self.loss_mask, self.parameters["min_layers"], len(self.layers))
            self.__dict__["_required_cache"] = found
        return found

    @property
    def _preparations(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per layer: the kept bins' flat positions and the inverse reference (once per process)."""
        found = self.__dict__.get("_preparation_cache")
        if found is None:
            found = [
                (
                    preprocessing.flat_index(layer["kept_rows"], layer["kept_columns"], layer["shape"][1]),
                    preprocessing.inverse_reference(layer["reference"], COMPUTE_DTYPE),
                )
                for layer in self.layers
            ]
            self.__dict__["_preparation_cache"] = found
        return found

    @property
    def _solvers(self) -> list[reconstruction.FaceSolver]:
        # Derived from the components once per process; never persisted.
        solvers = self.__dict__.get("_solver_cache")
        if solvers is None:
            solvers = [reconstruction.FaceSolver(layer["components"]) for layer in self.layers]
            self.__dict__["_solver_cache"] = solvers
        return solvers

    def validate(self, X: dict, with_metadata: bool = False, check_values: bool = True):
        """Check names, shapes and values; returns {name: (N, rows, cols) array}
        (and {metadata name: (N,) array} with ``with_metadata``). ``check_values`` False leaves
        the map values (finite, non-negative, INT32 range) to the caller."""
        expected = self.input_names + list(self.metadata_inputs)
        if not isinstance(X, dict):
            raise InputError(f"expected a dict of inputs keyed by {expected}, got {type(X).__name__}")
        missing = [name for name in expected if name not in X]
        unknown = [name for name in X if name not in expected]
        if missing or unknown:
            raise InputError(f"inputs do not match the model: missing {missing}, unknown {unknown}; expected {expected}")
        maps, sizes = {}, {}
        for name, shape in self.input_shapes.items():
            array = np.asarray(X[name])
            if array.ndim != 3 or array.shape[1:] != shape:
                raise InputError(f"input {name!r}: expected shape (N, {shape[0]}, {shape[1]}), received {array.shape}")
            if array.dtype.kind not in "iuf":
                raise InputError(f"input {name!r}: expected numeric counts, received dtype {array.dtype}")
            if check_values:
                _check_values(name, array)
            maps[name] = array
            sizes[name] = array.shape[0]
        metadata = {}
        for name, datatype in self.metadata_inputs.items():
            metadata[name] = self._validate_metadata(name, datatype, X[name])
            sizes[name] = len(metadata[name])
        if len(set(sizes.values())) > 1:
            raise InputError(f"inputs have different numbers of lumisections: {sizes}")
        return (maps, metadata) if with_metadata else maps

    @staticmethod
    def _validate_metadata(name: str, datatype: str, values) -> np.ndarray:
        """One metadata input: (N,) of its datatype's kind, finite, in range."""
        array = np.asarray(values)
        if array.ndim != 1:
            raise InputError(f"input {name!r}: expected shape (N,), received {array.shape}")
        if array.dtype.kind not in METADATA_KINDS[datatype]:
            raise InputError(f"input {name!r}: expected {datatype} values, received dtype {array.dtype}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InputError(f"input {name!r}: values must be finite, received NaN or infinity")
        if datatype.startswith("FP") and array.size and np.abs(array).max() > np.finfo(f"float{datatype[2:]}").max:
            # JSON 1e39 for an FP32 value is finite as read, infinite once cast: refused, not inf.
            raise InputError(f"input {name!r}: values must lie in the {datatype} range")
        if datatype.startswith("INT") and array.size:
            info = np.iinfo(np.dtype(datatype.lower()))
            if array.min() < info.min or array.max() > info.max:
                raise InputError(f"input {name!r}: values must lie in the {datatype} range")
        return array

    # -- persistence: plain state only ------------------------------------------------------
    def __getstate__(self) -> dict:
        return {"format_version": self.format_version, "parameters": self.parameters, "layers": self.layers}

    def __setstate__(self, state: dict) -> None:
        if state.get("format_version") not in SUPPORTED_FORMAT_VERSIONS or type(state.get("format_version")) is not int:
            raise ValueError(
                f"model file format {state.get('format_version')!r} is not supported by this pixelnmf "
                f"(format {FORMAT_VERSION}); retrain or sync the package"
            )
        self.format_version = FORMAT_VERSION
        # Format 1 files predate metadata inputs and filters: they have none.
        self.parameters = {"metadata_inputs": {}, "filters": (), **state["parameters"]}
        self.layers = state["layers"]
