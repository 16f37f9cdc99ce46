"""MLServer handler for the BPix1 NMF: it scores each batch and exports the largest loss of the
last batch as a Prometheus gauge, served on a port of its own (9100) for our monitoring to scrape.
The gauge and its server are made when the model loads.

DIALS sends what the template declares (one INT32 input ``OccupancyBPix1``, flattened, shape
[N, 20, 16]), so the handler reshapes it and scores it.
"""

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri
from prometheus_client import Gauge, start_http_server
from scipy.optimize import nnls

LOSS_THRESHOLD = 0.016
MIN_ENTRIES = 30_000
METRICS_PORT = 9100


class NMFModel(MLModel):
    async def load(self) -> bool:
        model_uri = await get_model_uri(self._settings)
        self._model = joblib.load(model_uri)
        self._last_max_loss = Gauge("bpix1_nmf_last_max_loss", "Largest reconstruction loss of the last batch")
        start_http_server(METRICS_PORT)
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
        if losses.size:
            self._last_max_loss.set(float(losses.max()))

        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="Flag", shape=list(flags.shape), datatype="BOOL", data=flags.tolist()),
                ResponseOutput(name="Loss", shape=list(losses.shape), datatype="FP32", data=losses.tolist()),
            ],
        )
