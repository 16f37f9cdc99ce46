"""MLServer handler: a LightGBM classifier of BPix3 occupancy maps.

The model file is ``joblib.dump(LGBMClassifier)``, trained on the row and column sums of
unit-mean 44 x 8 maps labelled normal (0) or anomalous (1). DIALS sends the map flattened with
the template's shape; ``Flag`` is the probability above 0.5, ``AnomalyProbability`` the
probability itself.
"""

import joblib
import numpy as np
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

ROWS, COLS = 44, 8
PROBABILITY_CUT = 0.5


def features(maps):
    """Row and column profiles of each unit-mean map."""
    maps = maps.reshape(-1, ROWS, COLS).astype(np.float64)
    maps = maps / maps.mean(axis=(1, 2), keepdims=True)
    return np.concatenate([maps.mean(axis=2), maps.mean(axis=1)], axis=1)


class LGBMModel(MLModel):
    async def load(self) -> bool:
        self.model = joblib.load(await get_model_uri(self.settings))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inp = payload.inputs[0]
        maps = np.array(inp.data).reshape(inp.shape)
        probability = self.model.predict_proba(features(maps))[:, 1].astype(np.float32)
        flag = probability > PROBABILITY_CUT
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="Flag", shape=[len(flag)], datatype="BOOL", data=flag.tolist()),
                ResponseOutput(name="AnomalyProbability", shape=[len(probability)], datatype="FP32", data=probability.tolist()),
            ],
        )
