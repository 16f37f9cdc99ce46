"""MLServer handler for the BPix1 NMF: an anomaly score from the Pearson chi-square of the fit.

DIALS sends the maps flattened (``OccupancyBPix1``, shape [N, 20, 16]). Each map is fitted as a
non-negative combination of the NMF components (NNLS, in counts); the chi-square per bin of that
fit is about 1 for Poisson fluctuations and grows with any dead or hot region. The score is the
inverse likelihood of the fit, exp(chi2 / 2): about 1.6 for a good lumisection, above 100 for a
bad one. DIALS flags scores above the template's AnomalyThreshold.
"""

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri
from scipy.optimize import nnls

LOSS_THRESHOLD = 0.016  # the NMF folders' loss threshold; DIALS thresholds the score here


class NMFModel(MLModel):
    async def load(self) -> bool:
        self._model = joblib.load(await get_model_uri(self._settings))
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inp = payload.inputs[0]
        maps = np.array(inp.data).reshape(inp.shape)
        maps = maps.reshape(maps.shape[0], -1).astype(np.float64)

        components = self._model.components_.T
        scores = []
        for row in maps:
            weights, _ = nnls(components, row)
            expected = components @ weights
            chi2 = ((row - expected) ** 2 / np.maximum(expected, 1.0)).mean()
            scores.append(np.exp(chi2 / 2.0))
        scores = np.array(scores, dtype=np.float32)

        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="Score", shape=list(scores.shape), datatype="FP32", data=scores.tolist())],
        )
