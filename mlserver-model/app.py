"""MLServer handler of the pixel-barrel NMF model, as DIALS runs it (``Handler: app.Handler``).

DIALS sends one V2 input per monitoring element, flattened (``shape`` [N, rows, cols], ``data``
a flat list), plus OMS metadata inputs named ``<metadata>__<attribute>`` (shape [N]) when the
template declares ``InputMetadata``. The handler answers ``Flag`` (BOOL, [N]) and ``Metric``
(FP32, [N]) in request order. Anything malformed is refused with ``InferenceError`` (HTTP 400)
naming the input; the server stays ready.

One handler serves every deployment of the model: which maps and which metadata inputs are
required comes from the model file (``PixelNMF.input_shapes`` and ``metadata_inputs``, the
template's InputSignature and InputMetadata). Metadata inputs the model does not declare are
ignored. Both templates name this folder as CodeUri, each with its own model file (models/).
"""

from __future__ import annotations

import array

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor, ResponseOutput
from mlserver.utils import get_model_uri
from pixelnmf import InputError, PixelNMF

#: The template's contract: the DataType of every input and the OutputSignature.
INPUT_DATATYPE = "INT32"
FLAG_OUTPUT = "Flag"
METRIC_OUTPUT = "Metric"
#: Inputs DIALS may add next to the monitoring elements (OMS attributes) carry this separator.
METADATA_SEPARATOR = "__"
_INT32_MAX = np.iinfo(np.int32).max
#: numpy dtype kinds a metadata input of each datatype may arrive as in JSON.
METADATA_KINDS = {"BOOL": "b", "INT32": "iu", "INT64": "iu", "FP32": "iuf", "FP64": "iuf"}


def _raw_data(request_input):
    """The JSON data of a V2 input, whichever pydantic major MLServer runs on."""
    data = request_input.data
    for attribute in ("root", "__root__"):
        if hasattr(data, attribute):
            return getattr(data, attribute)
    return data


def decode_metadata(request_input, datatype: str) -> np.ndarray:
    """One declared metadata input -> (N,) array of its datatype, or InferenceError naming it."""
    name = request_input.name
    received = str(request_input.datatype).upper().removeprefix("TYPE_")
    if received != datatype:
        raise InferenceError(f"input {name!r}: datatype {request_input.datatype} received, expected {datatype}")
    shape = list(request_input.shape)
    if len(shape) != 1 or shape[0] < 0:
        raise InferenceError(f"input {name!r}: shape {shape} received, expected shape [N]")
    try:
        values = np.asarray(_raw_data(request_input))
    except (ValueError, TypeError) as error:
        raise InferenceError(f"input {name!r}: data is not a regular array ({error}); expected shape [N] of {datatype}") from None
    if values.ndim > 1 or values.size != shape[0]:
        raise InferenceError(
            f"input {name!r}: {values.size} values of shape {list(values.shape)} received for shape {shape}; expected a flat list of {shape[0]}"
        )
    kinds = METADATA_KINDS[datatype]
    if values.size and values.dtype.kind not in kinds:
        raise InferenceError(f"input {name!r}: data must be {datatype} values, received dtype {values.dtype}")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise InferenceError(f"input {name!r}: data must be finite, received NaN or infinity")
    dtype = np.dtype(datatype.lower().replace("fp", "float")) if datatype != "BOOL" else np.dtype(bool)
    if dtype.kind == "i" and values.size and (values.min() < np.iinfo(dtype).min or values.max() > np.iinfo(dtype).max):
        raise InferenceError(f"input {name!r}: values must lie in the {datatype} range")
    return values.reshape(shape[0]).astype(dtype)


def decode_counts(request_input, per_ls_shape: tuple[int, ...]) -> np.ndarray:
    """One V2 input -> (N, *per_ls_shape) int32 counts, or InferenceError naming the input."""
    name = request_input.name
    expected = f"shape [N, {', '.join(str(d) for d in per_ls_shape)}]"
    datatype = str(request_input.datatype).upper().removeprefix("TYPE_")
    if datatype != INPUT_DATATYPE:
        raise InferenceError(f"input {name!r}: datatype {request_input.datatype} received, expected {INPUT_DATATYPE}")
    shape = list(request_input.shape)
    if len(shape) != 1 + len(per_ls_shape) or tuple(shape[1:]) != per_ls_shape or shape[0] < 0:
        raise InferenceError(f"input {name!r}: shape {shape} received, expected {expected}")
    raw = _raw_data(request_input)
    try:
        # Fast path for what DIALS sends, a flat list of ints: array.array refuses floats,
        # strings and nested lists, which then take the general path below.
        values = np.frombuffer(array.array("q", raw), dtype=np.int64)
    except (TypeError, OverflowError):
        try:
            values = np.asarray(raw)
        except (ValueError, TypeError) as error:
            raise InferenceError(f"input {name!r}: data is not a regular numeric array ({error}); expected {expected}") from None
    if values.dtype.kind not in "iuf" or values.dtype.kind == "f" and values.size and not np.isfinite(values).all():
        raise InferenceError(
            f"input {name!r}: data must be finite numeric counts for {INPUT_DATATYPE}, received dtype {values.dtype}"
        )
    if values.dtype.kind == "f" and values.size and not (values == np.round(values)).all():
        raise InferenceError(f"input {name!r}: data must be whole-number counts for {INPUT_DATATYPE}")
    if values.size != int(np.prod(shape)):
        raise InferenceError(f"input {name!r}: {values.size} values received for shape {shape} ({int(np.prod(shape))} expected)")
    if values.size and (values.min() < 0 or values.max() > _INT32_MAX):
        raise InferenceError(f"input {name!r}: counts must lie in [0, {_INT32_MAX}]")
    return values.astype(np.int32, copy=False).reshape(shape)


class Handler(MLModel):
    async def load(self) -> bool:
        model_uri = await get_model_uri(self._settings)
        model = joblib.load(model_uri)
        if not isinstance(model, PixelNMF):
            raise TypeError(
                f"{model_uri} holds a {type(model).__module__}.{type(model).__qualname__}, expected a pixelnmf.PixelNMF from this folder"
            )
        self._model = model
        # The compiled loop (numba, in the image) is compiled here, a few seconds: the model
        # is ready once it is, and the first request is answered at full speed.
        if hasattr(model, "warm_up"):
            model.warm_up()
        # Format 1 model files carry no metadata inputs.
        self._metadata_inputs = dict(getattr(model, "metadata_inputs", {}))
        # Model metadata (/v2/models/<name>) then advertises the contract: dismcli's
        # model-settings.json declares no inputs or outputs.
        self.inputs = [
            MetadataTensor(name=name, datatype=INPUT_DATATYPE, shape=[-1, *shape]) for name, shape in model.input_shapes.items()
        ]
        self.inputs += [
            MetadataTensor(name=name, datatype=datatype, shape=[-1]) for name, datatype in self._metadata_inputs.items()
        ]
        self.outputs = [
            MetadataTensor(name=FLAG_OUTPUT, datatype="BOOL", shape=[-1]),
            MetadataTensor(name=METRIC_OUTPUT, datatype="FP32", shape=[-1]),
        ]
        return True

    def decode_maps(self, payload: InferenceRequest) -> dict[str, np.ndarray]:
        """The model's inputs: every map and every declared metadata input, decoded and checked."""
        expected = self._model.input_shapes
        declared = self._metadata_inputs
        received = [item.name for item in payload.inputs if METADATA_SEPARATOR not in item.name or item.name in declared]
        missing = [name for name in [*expected, *declared] if name not in received]
        unknown = [name for name in received if name not in expected and name not in declared]
        duplicated = sorted({name for name in received if received.count(name) > 1})
        if missing or unknown or duplicated:
            also = f" and the metadata inputs {list(declared)}" if declared else ""
            raise InferenceError(
                f"inputs {sorted(received)} received: missing {missing}, unknown {unknown}, duplicated {duplicated}; "
                f"expected exactly {list(expected)}{also} (other metadata inputs named like a__b are ignored)"
            )
        maps = {item.name: decode_counts(item, expected[item.name]) for item in payload.inputs if item.name in expected}
        maps.update({item.name: decode_metadata(item, declared[item.name]) for item in payload.inputs if item.name in declared})
        sizes = {name: len(array) for name, array in maps.items()}
        if len(set(sizes.values())) > 1:
            raise InferenceError(f"inputs carry different numbers of lumisections: {sizes}; expected the same N for all")
        return maps

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        maps = self.decode_maps(payload)
        try:
            flag, metric = self._model.predict_with_score(maps)
        except InputError as error:
            raise InferenceError(str(error)) from None
        return self.encode_answer(payload.id, flag, metric)

    def encode_answer(self, request_id: str | None, flag: np.ndarray, metric: np.ndarray) -> InferenceResponse:
        """The V2 answer: Flag BOOL [N] and Metric FP32 [N] in request order, the request's id echoed."""
        n_ls = len(flag)
        return InferenceResponse(
            id=request_id,
            model_name=self.name,
            model_version=self.version,
            outputs=[
                ResponseOutput(name=FLAG_OUTPUT, shape=[n_ls], datatype="BOOL", data=flag.astype(bool).tolist()),
                ResponseOutput(name=METRIC_OUTPUT, shape=[n_ls], datatype="FP32", data=metric.astype(np.float32).tolist()),
            ],
        )
