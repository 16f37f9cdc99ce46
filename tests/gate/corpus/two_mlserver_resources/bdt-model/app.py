"""MLServer handler: a gradient-boosted classifier (XGBoost) of BPix1 occupancy maps.

The model file is XGBoost's own JSON format (``Booster.save_model("anomaly_bdt.json")``), trained
on the sorted bins of unit-mean 20 x 16 maps labelled normal (0) or anomalous (1). DIALS sends the map
flattened with the template's shape; ``Flag`` is the probability above 0.5, ``AnomalyProbability``
the probability itself.
"""

import numpy as np
import xgboost as xgb
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

PROBABILITY_CUT = 0.5


def features(maps: np.ndarray) -> np.ndarray:
    """The sorted bins of each unit-mean map: where an anomaly sits does not matter."""
    flat = maps.reshape(len(maps), -1).astype(np.float32)
    means = flat.mean(axis=1, keepdims=True)
    return np.sort(np.divide(flat, means, out=np.zeros_like(flat), where=means > 0), axis=1)


class BDTModel(MLModel):
    async def load(self) -> bool:
        self.booster = xgb.Booster()
        self.booster.load_model(await get_model_uri(self.settings))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        maps = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        probability = self.booster.predict(xgb.DMatrix(features(maps))).astype(np.float32)
        flag = probability > PROBABILITY_CUT
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="Flag", shape=[len(flag)], datatype="BOOL", data=flag.tolist()),
                ResponseOutput(name="AnomalyProbability", shape=[len(probability)], datatype="FP32", data=probability.tolist()),
            ],
        )
