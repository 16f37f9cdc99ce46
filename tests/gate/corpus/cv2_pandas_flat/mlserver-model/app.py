"""MLServer handler: a scaled PCA on OpenCV and pandas features of FPix ring-1 occupancy.

The joblib holds a plain scikit-learn ``Pipeline`` (``StandardScaler`` then ``PCA``) fitted on
52 features per lumisection: 49 from ``features.py`` (OpenCV blur and area downsampling of the
unit-mean map) and 3 from ``table.py`` (a pandas per-blade table). DIALS sends the map
flattened: ``shape`` [N, 24, 32], ``data`` N*768 INT32 counts. ``AnomalyScore`` (FP32) is the
mean squared PCA residual of the standardised features (about 0.3 for normal lumisections);
``Flag`` (BOOL) is AnomalyScore > SCORE_THRESHOLD. Lumisections with fewer than MIN_ENTRIES hits are not
evaluated (score 0, not flagged). Malformed requests get ``InferenceError`` (HTTP 400) naming
the input.
"""

from __future__ import annotations

import joblib
import numpy as np
from features import image_features
from mlserver import MLModel
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri
from table import table_features

INPUT_NAME = "OccupancyFPixRing1"
INPUT_DATATYPE = "INT32"
MAP_SHAPE = (24, 32)
SCORE_THRESHOLD = 1.6
MIN_ENTRIES = 30_000
INT32_MAX = 2**31 - 1


def features_of(maps: np.ndarray) -> np.ndarray:
    return np.hstack([image_features(maps), table_features(maps)])


def anomaly_score(model, maps: np.ndarray) -> np.ndarray:
    """(N,) float32 score of each map; 0 for lumisections below MIN_ENTRIES."""
    score = np.zeros(len(maps), dtype=np.float32)
    evaluated = np.flatnonzero(maps.reshape(len(maps), int(np.prod(maps.shape[1:]))).sum(axis=1) >= MIN_ENTRIES)
    if evaluated.size:
        features = model["scale"].transform(features_of(maps[evaluated]))
        pca = model["pca"]
        residual = features - pca.inverse_transform(pca.transform(features))
        score[evaluated] = (residual**2).mean(axis=1)
    return score


def decode_counts(request_input) -> np.ndarray:
    """One V2 input -> int64 counts (N, 24, 32); InferenceError naming the input otherwise."""
    name = request_input.name
    datatype = str(request_input.datatype).upper().removeprefix("TYPE_")
    if datatype != INPUT_DATATYPE:
        raise InferenceError(f"input {name!r}: datatype {datatype}, expected {INPUT_DATATYPE}")
    shape = [int(d) for d in request_input.shape]
    if len(shape) != 3 or shape[0] < 0 or tuple(shape[1:]) != MAP_SHAPE:
        raise InferenceError(f"input {name!r}: shape {shape}, expected [N, {MAP_SHAPE[0]}, {MAP_SHAPE[1]}]")
    data = request_input.data
    data = getattr(data, "root", getattr(data, "__root__", data))  # MLServer >= 1.6 / 1.5
    try:
        values = np.asarray(data)
    except ValueError as error:  # ragged nesting
        raise InferenceError(f"input {name!r}: data is not a regular list of numbers ({error})") from None
    if values.dtype.kind not in "iuf":
        raise InferenceError(f"input {name!r}: data must be numbers, received {values.dtype} values")
    if values.size != int(np.prod(shape)):
        raise InferenceError(f"input {name!r}: {values.size} values for shape {shape}")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise InferenceError(f"input {name!r}: counts must be finite (NaN or infinity received)")
    if values.size and ((values != np.round(values)).any() or values.min() < 0 or values.max() > INT32_MAX):
        raise InferenceError(f"input {name!r}: counts must be whole numbers in [0, {INT32_MAX}]")
    return values.astype(np.int64).reshape(shape)


class FeaturePCA(MLModel):
    async def load(self) -> bool:
        self.pipeline = joblib.load(await get_model_uri(self.settings))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        model_inputs = [item.name for item in payload.inputs if "__" not in item.name]  # a__b: OMS metadata, unused
        if model_inputs != [INPUT_NAME]:
            raise InferenceError(f"inputs {model_inputs} received: expected exactly one input {INPUT_NAME!r}")
        counts = decode_counts(next(item for item in payload.inputs if item.name == INPUT_NAME))
        score = anomaly_score(self.pipeline, counts)
        flag = score > SCORE_THRESHOLD
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            model_version=self.version,
            outputs=[
                ResponseOutput(name="Flag", shape=[len(flag)], datatype="BOOL", data=flag.tolist()),
                ResponseOutput(name="AnomalyScore", shape=[len(score)], datatype="FP32", data=score.tolist()),
            ],
        )
