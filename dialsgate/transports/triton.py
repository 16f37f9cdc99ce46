"""The served model through tritonclient, an independent V2 client (well-formed requests only)."""

from __future__ import annotations

import numpy as np

from dialsgate.contract.template import DTYPE_OF_DATATYPE
from dialsgate.limits import limit
from dialsgate.transports.outcome import Outcome


class TritonEndpoint:
    """The served model through tritonclient, an independent V2 client (well-formed requests only)."""

    transport = "tritonclient"

    def __init__(self, url: str, model_name: str, timeout: float | None = None):
        import tritonclient.http as triton  # Late: only the server layer's environment has tritonclient

        self.triton = triton
        self.model_name = model_name
        self.client = triton.InferenceServerClient(
            url=url.removeprefix("http://").rstrip("/"), network_timeout=limit("request_timeout") if timeout is None else timeout
        )
        self._post = self.client._post
        self.client._post = self._capped_post  # tritonclient reads whole answers: refuse one too long first

    def _capped_post(self, *args, **kwargs):
        """tritonclient's POST, refused when the answer's declared length is over the HTTP answer cap."""
        response = self._post(*args, **kwargs)
        cap = int(limit("http_answer_bytes"))
        length = response.content_length
        if length is not None and length > cap:
            # Not released to the pool: its unread answer must not reach the next request.
            raise self.triton.InferenceServerException(
                f"the served model's answer is {length:,} bytes, longer than {cap:,} bytes (the cap of one HTTP "
                "answer; DIALSGATE_HTTP_ANSWER_BYTES changes it): it was not read",
                status="500",
            )
        return response

    def predict(self, body: dict) -> Outcome:

        inputs = []
        for item in body["inputs"]:
            array = np.asarray(item["data"], dtype=DTYPE_OF_DATATYPE[item["datatype"]]).reshape(item["shape"])
            infer_input = self.triton.InferInput(item["name"], list(array.shape), item["datatype"])
            infer_input.set_data_from_numpy(array, binary_data=False)
            inputs.append(infer_input)
        try:
            result = self.client.infer(self.model_name, inputs, request_id=str(body.get("id", "")))
        except self.triton.InferenceServerException as error:
            status = error.status()
            return Outcome(status=int(status) if str(status).isdigit() else 500, error=error.message())
        return Outcome(response=result.get_response())

    def close(self) -> None:
        self.client.close()
