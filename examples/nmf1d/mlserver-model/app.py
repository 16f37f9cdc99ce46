"""MLServer handler of the nmf1d example (``Handler: app.Handler``).

DIALS sends the monitoring element as one V2 input, flattened (``shape`` [N, 100], ``data`` a
flat list of INT32 counts), possibly next to OMS metadata inputs named ``<metadata>__<attribute>``
(ignored). The answer is ``Score`` (FP32, [N]) in request order; DIALS flags a lumisection when
its Score is above the template's AnomalyThreshold (``BuiltinThreshold: false``). A malformed
request is refused with ``InferenceError`` (HTTP 400) naming the input.
"""

from __future__ import annotations

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri
from nmf1d import NMF1D, InputError

INPUT_DATATYPE = "INT32"
SCORE_OUTPUT = "Score"
SCORE_DATATYPE = "FP32"
METADATA_SEPARATOR = "__"
_INT32_MAX = int(np.iinfo(np.int32).max)


def _json_data(request_input):
    """The data of a V2 input as plain JSON values (MLServer on pydantic 1 or 2)."""
    data = request_input.data
    for wrapper in ("root", "__root__"):
        if hasattr(data, wrapper):
            return getattr(data, wrapper)
    return data


def decode_counts(request_input, per_ls_shape: tuple[int, ...]) -> np.ndarray:
    """One V2 input -> int32 array (N, *per_ls_shape); InferenceError naming the input otherwise."""
    name = request_input.name
    wanted = "[N, " + ", ".join(map(str, per_ls_shape)) + "]"
    datatype = str(request_input.datatype).upper().removeprefix("TYPE_")
    if datatype != INPUT_DATATYPE:
        raise InferenceError(f"input {name!r}: datatype {datatype} received, expected {INPUT_DATATYPE}")
    shape = [int(d) for d in request_input.shape]
    if len(shape) != 1 + len(per_ls_shape) or shape[0] < 0 or tuple(shape[1:]) != tuple(per_ls_shape):
        raise InferenceError(f"input {name!r}: shape {shape} received, expected {wanted}")
    try:
        values = np.asarray(_json_data(request_input))
    except (ValueError, TypeError, OverflowError) as error:
        raise InferenceError(f"input {name!r}: data is not a flat list of numbers ({error})") from None
    expected_size = int(np.prod(shape))
    if values.size != expected_size:
        raise InferenceError(f"input {name!r}: {values.size} values received, shape {shape} needs {expected_size}")
    if values.dtype.kind not in "iuf":
        raise InferenceError(f"input {name!r}: data must be numeric counts, received values of dtype {values.dtype}")
    if values.dtype.kind == "f" and values.size:
        if not np.isfinite(values).all():
            raise InferenceError(f"input {name!r}: counts must be finite (NaN or infinity received)")
        if (values != np.floor(values)).any():
            raise InferenceError(f"input {name!r}: counts must be whole numbers")
    if values.size and (values.min() < 0 or values.max() > _INT32_MAX):
        raise InferenceError(f"input {name!r}: counts must lie in [0, {_INT32_MAX}], received [{values.min()}, {values.max()}]")
    return values.astype(np.int32).reshape(shape)


class Handler(MLModel):
    async def load(self) -> bool:
        model_uri = await get_model_uri(self._settings)
        model = joblib.load(model_uri)
        if not isinstance(model, NMF1D):
            raise TypeError(f"{model_uri} holds a {type(model).__module__}.{type(model).__name__}, expected an nmf1d.NMF1D")
        self._model = model
        return True

    def decode(self, payload: InferenceRequest) -> np.ndarray:
        expected = self._model.input_shapes
        received = [item.name for item in payload.inputs if METADATA_SEPARATOR not in item.name]
        missing = [name for name in expected if name not in received]
        unknown = sorted({name for name in received if name not in expected})
        duplicated = sorted({name for name in received if received.count(name) > 1})
        if missing or unknown or duplicated:
            raise InferenceError(
                f"inputs {received} received: missing {missing}, unknown {unknown}, duplicated {duplicated}; "
                f"expected exactly {list(expected)} (plus optional metadata inputs named like a__b)"
            )
        ((name, per_ls_shape),) = expected.items()
        item = next(item for item in payload.inputs if item.name == name)
        return decode_counts(item, per_ls_shape)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        counts = self.decode(payload)
        try:
            score = self._model.score(counts)
        except InputError as error:
            raise InferenceError(str(error)) from None
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            model_version=self.version,
            outputs=[
                ResponseOutput(
                    name=SCORE_OUTPUT, shape=[len(score)], datatype=SCORE_DATATYPE, data=score.astype(np.float32).tolist()
                )
            ],
        )
