"""MLServer handler: PCA reconstruction loss of BPix2 occupancy, flags filtered by OMS metadata.

The joblib holds a plain ``sklearn.decomposition.PCA`` (4 components) fitted on flattened,
unit-mean 28 x 8 maps. DIALS sends the map flattened (``shape`` [N, 28, 8], INT32 counts) and
the template's InputMetadata as ``oms_lumisection_info__<attribute>`` inputs of shape [N]
(``oms.py``). ``Loss`` (FP32) is the mean squared PCA residual; ``Flag`` (BOOL) is
Loss > LOSS_THRESHOLD, but never for a lumisection with BPix not ready or pileup <= MIN_PILEUP
(the model was trained on physics fills only). Lumisections with fewer than MIN_ENTRIES hits
are not evaluated (loss 0). Malformed inputs, metadata included, get ``InferenceError``
(HTTP 400) naming the input.
"""

from __future__ import annotations

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri
from oms import METADATA, decode_metadata

INPUT_NAME = "OccupancyBPix2"
INPUT_DATATYPE = "INT32"
MAP_SHAPE = (28, 8)
LOSS_THRESHOLD = 0.013
MIN_ENTRIES = 30_000
MIN_PILEUP = 25.0
INT32_MAX = 2**31 - 1


def normalised(maps: np.ndarray) -> np.ndarray:
    """(N, rows, cols) counts -> (N, rows*cols) float64 maps of unit mean (zeros stay zeros)."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), int(np.prod(np.shape(maps)[1:])))
    return flat / np.maximum(flat.mean(axis=1, keepdims=True), 1e-12)


def reconstruction_loss(model, maps: np.ndarray) -> np.ndarray:
    """(N,) float32 mean squared PCA residual; 0 for lumisections below MIN_ENTRIES."""
    loss = np.zeros(len(maps), dtype=np.float32)
    evaluated = np.flatnonzero(np.asarray(maps).reshape(len(maps), int(np.prod(np.shape(maps)[1:]))).sum(axis=1) >= MIN_ENTRIES)
    if evaluated.size:
        x = normalised(maps[evaluated])
        residual = x - model.inverse_transform(model.transform(x))
        loss[evaluated] = (residual**2).mean(axis=1)
    return loss


def filtered_flags(loss: np.ndarray, bpix_ready: np.ndarray, pileup: np.ndarray) -> np.ndarray:
    return (loss > LOSS_THRESHOLD) & bpix_ready & (pileup > MIN_PILEUP)


def decode_counts(request_input) -> np.ndarray:
    """The monitoring element -> int64 counts (N, 28, 8); InferenceError naming it otherwise."""
    name = request_input.name
    datatype = str(request_input.datatype).upper().removeprefix("TYPE_")
    if datatype != INPUT_DATATYPE:
        raise InferenceError(f"input {name!r}: datatype {datatype}, expected {INPUT_DATATYPE}")
    shape = [int(d) for d in request_input.shape]
    if len(shape) != 3 or shape[0] < 0 or tuple(shape[1:]) != MAP_SHAPE:
        raise InferenceError(f"input {name!r}: shape {shape}, expected [N, {MAP_SHAPE[0]}, {MAP_SHAPE[1]}]")
    data = request_input.data
    data = getattr(data, "root", getattr(data, "__root__", data))
    try:
        values = np.asarray(data)
    except ValueError as error:
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


class FilteredPCA(MLModel):
    async def load(self) -> bool:
        self.pca = joblib.load(await get_model_uri(self.settings))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        by_name = {}
        for item in payload.inputs:
            if item.name in by_name:
                raise InferenceError(f"input {item.name!r} is sent twice")
            by_name[item.name] = item
        # Metadata inputs (a__b) not declared in the template are ignored; the declared ones are required.
        unknown = sorted(n for n in by_name if n != INPUT_NAME and "__" not in n)
        if INPUT_NAME not in by_name or unknown:
            raise InferenceError(
                f"inputs {sorted(by_name)} received: expected {INPUT_NAME!r} plus {METADATA}__<attribute> (unknown: {unknown})"
            )
        counts = decode_counts(by_name[INPUT_NAME])
        metadata = decode_metadata(by_name, len(counts))
        loss = reconstruction_loss(self.pca, counts)
        flag = filtered_flags(loss, metadata["bpix_ready"], metadata["pileup"])
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            model_version=self.version,
            outputs=[
                ResponseOutput(name="Flag", shape=[len(flag)], datatype="BOOL", data=flag.tolist()),
                ResponseOutput(name="Loss", shape=[len(loss)], datatype="FP32", data=loss.tolist()),
            ],
        )
