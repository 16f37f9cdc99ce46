"""MLServer handler: a PCA reconstruction of BPix1 occupancy maps, exported to ONNX, run by onnxruntime.

The model file is ``pca_bpix1.onnx``: an ONNX graph (input ``maps`` float32 [N, 320], output
``reconstruction`` float32 [N, 320]) holding the mean and the 6 principal components fitted on
flattened, unit-mean 20 x 16 maps. DIALS sends the map flattened (``shape`` [N, 20, 16]). Each
map is divided by its mean, reconstructed by the graph, and scored by its mean squared residual:
``Flag`` (BOOL) is loss > LOSS_THRESHOLD, ``Loss`` (FP32) the loss.
"""

import numpy as np
import onnxruntime
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

MAP_SHAPE = (20, 16)
LOSS_THRESHOLD = 0.015


class PCAModel(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self.settings)
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        maps = NumpyCodec.decode_input(payload.inputs[0]).reshape(-1, MAP_SHAPE[0] * MAP_SHAPE[1]).astype(np.float32)
        means = maps.mean(axis=1, keepdims=True)
        scaled = np.divide(maps, means, out=np.zeros_like(maps), where=means > 0)
        (reconstruction,) = self.session.run(None, {self.input_name: scaled})
        loss = ((scaled - reconstruction) ** 2).mean(axis=1).astype(np.float32)
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[
                ResponseOutput(name="Flag", shape=[len(loss)], datatype="BOOL", data=(loss > LOSS_THRESHOLD).tolist()),
                ResponseOutput(name="Loss", shape=[len(loss)], datatype="FP32", data=loss.tolist()),
            ],
        )
