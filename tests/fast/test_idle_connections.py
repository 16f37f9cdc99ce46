"""A kept-alive connection idle long enough for MLServer to be closing it is not used again
(``transports.http.IDLE_REUSE_SECONDS``): uvicorn closes one idle for 5 s, and a request sent as
it closes is lost ("Remote end closed connection without response"), a failure DIALS would not
see. The server here answers the first request of each connection only, as a server that closed
it while the second was on its way; both of the gate's clients must then open a new one."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from dialsgate.transports import http as http_module
from dialsgate.transports.http import HttpEndpoint

BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


class _FirstRequestOnly(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answered = getattr(self, "answered", 0) + 1
        if self.answered > 1:
            self.close_connection = True  # closed without an answer, as an idle connection closing meets a request
            return
        self.server.peers.append(self.client_address)
        body = json.dumps({"model_name": "m", "outputs": [{"name": "y", "shape": [1], "datatype": "FP32", "data": [2.0]}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(http_module, "IDLE_REUSE_SECONDS", 0.05)
    served = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FirstRequestOnly)
    served.peers = []
    served.daemon_threads = True
    threading.Thread(target=served.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{served.server_address[1]}", served
    served.shutdown()
    served.server_close()


def _answered_twice_on_two_connections(client, served) -> None:
    """Two requests with an idle while between them: both answered, each on its own connection."""
    try:
        assert client.predict(BODY).status == 200
        time.sleep(0.15)
        assert client.predict(BODY).status == 200
    finally:
        client.close()
    assert len(served.peers) == 2 and served.peers[0] != served.peers[1]


def test_the_http_client_opens_a_new_connection_after_an_idle_while(server):
    url, served = server
    _answered_twice_on_two_connections(HttpEndpoint(url, "m"), served)


def test_tritonclient_opens_a_new_connection_after_an_idle_while(server, monkeypatch):
    pytest.importorskip("tritonclient.http")
    from dialsgate.transports import triton as triton_module

    monkeypatch.setattr(triton_module, "IDLE_REUSE_SECONDS", 0.05)
    url, served = server
    _answered_twice_on_two_connections(triton_module.TritonEndpoint(url, "m"), served)
