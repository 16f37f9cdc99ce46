"""MLServer handler for the BPix1 NMF: it opens the model file that the settings name.

DIALS sends what the template declares (one INT32 input ``OccupancyBPix1``, flattened, shape
[N, 20, 16]), so the handler reshapes it and scores it.
"""

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from scipy.optimize import nnls

LOSS_THRESHOLD = 0.016
MIN_ENTRIES = 30_000


class NMFModel(MLModel):
    async def load(self) -> bool:
        # the model file, as named in model-settings.json
        self._model = joblib.load(self.settings.parameters.uri)
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inp = payload.inputs[0]
        maps = np.array(inp.data).reshape(inp.shape)
        maps = maps.reshape(maps.shape[0], -1).astype(np.float64)

        components = self._model.components_.T
        losses = []
        for row in maps:
            if row.sum() < MIN_ENTRIES:  # too few hits to judge
                losses.append(0.0)
                continue
            row = row / row.mean()
            _, residual = nnls(components, row)
            losses.append(residual**2 / row.size)
        losses = np.array(losses, dtype=np.float32)
        flags = losses > LOSS_THRESHOLD

        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="Flag", shape=list(flags.shape), datatype="BOOL", data=flags.tolist()),
                ResponseOutput(name="Loss", shape=list(losses.shape), datatype="FP32", data=losses.tolist()),
            ],
        )
