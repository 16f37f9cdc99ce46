"""MLServer handler: flags BPix1 occupancy maps that a scikit-learn NMF cannot reconstruct.

The joblib holds a plain ``sklearn.decomposition.NMF`` (4 components, fitted on flattened,
unit-mean 20 x 16 maps). DIALS sends the map flattened: ``shape`` [N, 20, 16], ``data`` N*320
INT32 counts. Each map is divided by its mean, fitted as a non-negative combination of the
components (exact NNLS per lumisection, so an LS scores the same in any batch), and its loss is
the mean squared residual. ``Flag`` (BOOL) is loss > LOSS_THRESHOLD; ``Loss`` (FP32) is the
loss. Lumisections with fewer than MIN_ENTRIES hits are not evaluated (loss 0, not flagged).
Malformed requests are refused with ``InferenceError`` (HTTP 400) naming the input.

A run sends hundreds of lumisections, one NNLS each: they are spread over a process pool started
in ``load()``. The pool's processes read the NMF from the module (``NMF_MODEL``, set before the
pool starts), and the pool is warmed up in ``load()`` (every process imports scipy's NNLS and
fits one map), so the first request of a run is as fast as the others.
"""

from __future__ import annotations

import multiprocessing

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri
from scipy.optimize import nnls

INPUT_NAME = "OccupancyBPix1"
INPUT_DATATYPE = "INT32"
MAP_SHAPE = (20, 16)
LOSS_THRESHOLD = 0.016
MIN_ENTRIES = 30_000
INT32_MAX = 2**31 - 1
N_PROCESSES = 4

#: The NMF, set by Model.load() before the pool starts; the pool's processes read it from here.
NMF_MODEL = None


def lumisection_loss(row: np.ndarray) -> float:
    """Mean squared NNLS residual of one unit-mean map (run in the pool's processes)."""
    components = np.asarray(NMF_MODEL.components_, dtype=np.float64).T
    row = row / row.mean()
    _, residual_norm = nnls(components, row)
    return residual_norm**2 / row.size


def _data(request_input):
    """The raw data list of a V2 input (MLServer 1.5 wraps it in ``__root__``, later in ``root``)."""
    data = request_input.data
    for wrapper in ("root", "__root__"):
        if hasattr(data, wrapper):
            return getattr(data, wrapper)
    return data


def decode_counts(request_input) -> np.ndarray:
    """One V2 input -> int64 counts (N, 20, 16); InferenceError naming the input otherwise."""
    name = request_input.name
    datatype = str(request_input.datatype).upper().removeprefix("TYPE_")
    if datatype != INPUT_DATATYPE:
        raise InferenceError(f"input {name!r}: datatype {datatype}, expected {INPUT_DATATYPE}")
    shape = [int(d) for d in request_input.shape]
    if len(shape) != 3 or shape[0] < 0 or tuple(shape[1:]) != MAP_SHAPE:
        raise InferenceError(f"input {name!r}: shape {shape}, expected [N, {MAP_SHAPE[0]}, {MAP_SHAPE[1]}]")
    try:
        values = np.asarray(_data(request_input), dtype=object).ravel()
        numbers = np.array([float(v) if not isinstance(v, (str, bytes, bool)) else np.nan for v in values], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InferenceError(f"input {name!r}: data is not a list of numbers ({error})") from None
    if numbers.size != int(np.prod(shape)):
        raise InferenceError(f"input {name!r}: {numbers.size} values for shape {shape}")
    if not np.isfinite(numbers).all():
        raise InferenceError(f"input {name!r}: counts must be finite numbers (NaN, infinity or text received)")
    if (numbers != np.round(numbers)).any() or (numbers < 0).any() or (numbers > INT32_MAX).any():
        raise InferenceError(f"input {name!r}: counts must be whole numbers in [0, {INT32_MAX}]")
    return numbers.astype(np.int64).reshape(shape)


class Model(MLModel):
    async def load(self) -> bool:
        global NMF_MODEL
        self.model = joblib.load(await get_model_uri(self.settings))
        NMF_MODEL = self.model
        self.pool = multiprocessing.Pool(processes=N_PROCESSES)
        # Warm-up: every process imports scipy and fits one flat map now, not at the first request.
        self.pool.map(lumisection_loss, [np.ones(MAP_SHAPE[0] * MAP_SHAPE[1])] * N_PROCESSES)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        names = [item.name for item in payload.inputs]
        model_inputs = [name for name in names if "__" not in name]  # a__b: OMS metadata, unused here
        if model_inputs != [INPUT_NAME]:
            raise InferenceError(f"inputs {model_inputs} received: expected exactly one input {INPUT_NAME!r}")
        counts = decode_counts(next(item for item in payload.inputs if item.name == INPUT_NAME))
        flat = counts.reshape(len(counts), MAP_SHAPE[0] * MAP_SHAPE[1]).astype(np.float64)
        loss = np.zeros(len(flat), dtype=np.float32)
        busy = np.flatnonzero(flat.sum(axis=1) >= MIN_ENTRIES)
        loss[busy] = self.pool.map(lumisection_loss, list(flat[busy]))
        flag = loss > LOSS_THRESHOLD
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            model_version=self.version,
            outputs=[
                ResponseOutput(name="Flag", shape=[len(flag)], datatype="BOOL", data=flag.tolist()),
                ResponseOutput(name="Loss", shape=[len(loss)], datatype="FP32", data=loss.tolist()),
            ],
        )
