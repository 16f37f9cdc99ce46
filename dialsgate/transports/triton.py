"""The served model through tritonclient, an independent V2 client (well-formed requests only)."""

from __future__ import annotations

import time

import numpy as np

from dialsgate.contract.template import DTYPE_OF_DATATYPE
from dialsgate.limits import limit
from dialsgate.transports.http import IDLE_REUSE_SECONDS
from dialsgate.transports.outcome import Outcome


class TritonEndpoint:
    """The served model through tritonclient, an independent V2 client (well-formed requests only)."""

    transport = "tritonclient"

    def __init__(self, url: str, model_name: str, timeout: float | None = None):
        import tritonclient.http as triton  # Late: only the server layer's environment has tritonclient

        self.triton = triton
        self.model_name = model_name
        self._address = url.removeprefix("http://").rstrip("/")
        self._timeout = limit("request_timeout") if timeout is None else timeout
        self._last_used = float("-inf")
        self._connect()

    def _connect(self) -> None:
        self.client = self.triton.InferenceServerClient(url=self._address, network_timeout=self._timeout)
        self._post = self.client._post
        self.client._post = self._capped_post  # tritonclient reads whole answers: refuse one too long first

    def _fresh_if_idle(self) -> None:
        """A new client (new connections) once the kept-alive ones may be closing (``IDLE_REUSE_SECONDS``)."""
        if time.monotonic() - self._last_used > IDLE_REUSE_SECONDS:
            self.client.close()
            self._connect()

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
        self._fresh_if_idle()
        try:
            result = self.client.infer(self.model_name, inputs, request_id=str(body.get("id", "")))
        except self.triton.InferenceServerException as error:
            status = error.status()
            return Outcome(status=int(status) if str(status).isdigit() else 500, error=error.message())
        finally:
            self._last_used = time.monotonic()
        return Outcome(response=result.get_response())

    def close(self) -> None:
        self.client.close()
