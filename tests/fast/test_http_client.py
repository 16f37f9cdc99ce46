"""The gate's one HTTP client keeps its connection between requests (over the relay of a served
container on no network, every new connection costs an engine exec)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dialsgate.transports.http import HttpEndpoint


class _Counting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn serves

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.peers.append(self.client_address)
        size = 2_000_000 if self.path.startswith("/v2/models/large") else 10
        body = json.dumps({"model_name": "m", "outputs": [], "pad": "x" * size}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    made = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    made.peers = []
    thread = threading.Thread(target=made.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield made
    made.shutdown()
    made.server_close()


def test_requests_share_one_connection(server):
    client = HttpEndpoint(f"http://127.0.0.1:{server.server_port}", "m")
    answers = [client.predict({"inputs": []}) for _ in range(5)]
    client.close()
    assert [answer.status for answer in answers] == [200] * 5
    assert len(server.peers) == 5 and len(set(server.peers)) == 1, server.peers


def test_an_answer_over_the_cap_drops_its_connection_only(server, monkeypatch):
    monkeypatch.setenv("DIALSGATE_HTTP_ANSWER_BYTES", "1000000")
    client = HttpEndpoint(f"http://127.0.0.1:{server.server_port}", "large")
    first = client.predict({"inputs": []})
    client.model_path = "/v2/models/m"
    second = client.predict({"inputs": []})
    client.close()
    assert first.status == 500 and "longer than 1,000,000 bytes" in first.error
    assert second.status == 200 and second.response["model_name"] == "m"
    assert len(set(server.peers)) == 2
