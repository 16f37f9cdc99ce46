"""MLServer handler for the BPix1 NMF using MLServer's own codecs for its input and outputs.

``NumpyCodec.decode_input`` gives the map as an array of the request's shape; the answer is
built with ``NumpyCodec.encode_output``, which gives every output a trailing axis (a flag per
lumisection becomes shape [N, 1]); the template declares exactly that: Dims [-1, 1].
"""

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri
from scipy.optimize import nnls

LOSS_THRESHOLD = 0.016
MIN_ENTRIES = 30_000


def nmf_loss(components: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Mean squared NNLS residual per unit-mean map; 0 for a lumisection with too few hits."""
    flat = maps.reshape(len(maps), -1).astype(np.float64)
    loss = np.zeros(len(flat), dtype=np.float32)
    for i, row in enumerate(flat):
        if row.sum() >= MIN_ENTRIES:
            row = row / row.mean()
            loss[i] = nnls(components.T, row)[1] ** 2 / row.size
    return loss


class CodecNMF(MLModel):
    async def load(self) -> bool:
        self.nmf = joblib.load(await get_model_uri(self.settings))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        maps = NumpyCodec.decode_input(payload.inputs[0])
        loss = nmf_loss(self.nmf.components_, maps)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("Flag", loss > LOSS_THRESHOLD),
                NumpyCodec.encode_output("Loss", loss),
            ],
        )
