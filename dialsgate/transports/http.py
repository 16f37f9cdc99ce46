"""The served model over HTTP with requests: JSON V2 bodies, as DIALS sends them.

One client for every HTTP use of the gate: ``predict(body) -> Outcome`` for the checks that run
over every transport, and the raw calls (``get``, ``infer``, ``infer_raw``) the server layer's
own tests need (health, metadata, bodies that are not V2 requests). One session per instance:
make one per thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from dialsgate.limits import limit
from dialsgate.protocol import jsontext
from dialsgate.transports.outcome import Outcome

#: Health and metadata answer at once.
QUICK_TIMEOUT = 30

#: A kept-alive connection idle longer than this is not used again. MLServer's HTTP server
#: (uvicorn, ``timeout_keep_alive`` 5 s in the image) closes one idle for 5 s, and a request sent as
#: it closes is lost: "Remote end closed connection without response" for a request DIALS would
#: have had answered. A new connection costs the relay a frame and MLServer an accept.
IDLE_REUSE_SECONDS = 2.0


class AnswerTooLarge(ValueError):
    """An HTTP answer longer than the gate reads."""


@dataclass
class Answer:
    """An HTTP answer as the server gave it."""

    status: int
    text: str

    def json(self):
        return jsontext.loads(self.text, "the served model's answer")


class HttpEndpoint:
    """The served model over HTTP (requests): JSON V2 bodies, as DIALS sends them."""

    transport = "http"

    def __init__(self, url: str, model_name: str, timeout: float | None = None):
        self.url = url.rstrip("/")
        self.model_path = f"/v2/models/{model_name}"
        # A whole batch of lumisections may take a while (DIALSGATE_REQUEST_TIMEOUT, 120 s by default).
        self.timeout = limit("request_timeout") if timeout is None else timeout
        self.session = requests.Session()
        # Answers as sent: MLServer gzips any answer over 500 bytes for a client that accepts gzip
        # (requests does by default), and one inflated here could hold a thousand times the cap it
        # was read under (a handler's zeros).
        self.session.headers["Accept-Encoding"] = "identity"
        self._last_used = float("-inf")

    def _fresh_if_idle(self) -> None:
        """Drop the kept-alive connection when it has been idle long enough for the server to be
        closing it (``IDLE_REUSE_SECONDS``); the next request opens a new one."""
        if time.monotonic() - self._last_used > IDLE_REUSE_SECONDS:
            self.session.close()

    def get(self, path: str) -> Answer:
        """One GET (health, metadata); its answer read as ``infer_raw``'s."""
        self._fresh_if_idle()
        try:
            return self._answer(self.session.get(self.url + path, timeout=QUICK_TIMEOUT, stream=True))
        finally:
            self._last_used = time.monotonic()

    def infer_raw(self, data: bytes, content_type: str | None = "application/json") -> Answer:
        """One POST; its answer read up to ``DIALSGATE_HTTP_ANSWER_BYTES`` (``AnswerTooLarge`` beyond)."""
        headers = {"Content-Type": content_type} if content_type else {}
        self._fresh_if_idle()
        try:
            response = self.session.post(
                f"{self.url}{self.model_path}/infer", data=data, headers=headers, timeout=self.timeout, stream=True
            )
            return self._answer(response)
        finally:
            self._last_used = time.monotonic()

    @staticmethod
    def _answer(response) -> Answer:
        """The answer's bytes as sent (never inflated), up to the cap; ``AnswerTooLarge`` beyond."""
        cap = int(limit("http_answer_bytes"))
        try:
            body = response.raw.read(cap + 1, decode_content=False)
        finally:
            response.close()
        if len(body) > cap:
            raise AnswerTooLarge(
                f"the served model's answer is longer than {cap:,} bytes (the cap of one HTTP answer; "
                "DIALSGATE_HTTP_ANSWER_BYTES changes it): it was not read"
            )
        return Answer(response.status_code, body.decode(response.encoding or "utf-8", errors="replace"))

    def infer(self, body: dict) -> Answer:
        return self.infer_raw(jsontext.dumps(body))

    def predict(self, body: dict) -> Outcome:
        try:
            answer = self.infer(body)
        except AnswerTooLarge as error:
            return Outcome(status=500, error=str(error))
        if answer.status == 200:
            try:
                return Outcome(response=answer.json())
            except jsontext.TooManyValues as error:
                return Outcome(status=500, error=str(error))
        return Outcome(status=answer.status, error=answer.text)

    def model_ready_status(self) -> int:
        return self.get(f"{self.model_path}/ready").status

    def close(self) -> None:
        self.session.close()
