"""MLServer handler for the BPix1 NMF: each occupancy map is normalised by its total first.

DIALS sends the maps flattened (``OccupancyBPix1``, shape [N, 20, 16]). The NMF was trained on
unit-mean maps, so each map is divided by its total (times the number of bins) before
``NMF.transform``; an empty map (no entries: the subdetector was out) stays empty and scores 0.
The loss is the mean squared reconstruction residual.
"""

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

LOSS_THRESHOLD = 0.016


class NMFModel(MLModel):
    async def load(self) -> bool:
        self._model = joblib.load(await get_model_uri(self._settings))
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inp = payload.inputs[0]
        maps = np.array(inp.data).reshape(inp.shape)
        maps = maps.reshape(maps.shape[0], -1).astype(np.float64)

        # normalise: unit mean per map, as in training; an empty map has no total to divide by
        totals = maps.sum(axis=1, keepdims=True)
        maps = maps / np.where(totals > 0, totals, 1.0) * maps.shape[1]

        weights = self._model.transform(maps)
        reconstructed = weights @ self._model.components_
        losses = ((maps - reconstructed) ** 2).mean(axis=1).astype(np.float32)
        flags = losses > LOSS_THRESHOLD

        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="Flag", shape=list(flags.shape), datatype="BOOL", data=flags.tolist()),
                ResponseOutput(name="Loss", shape=list(losses.shape), datatype="FP32", data=losses.tolist()),
            ],
        )
