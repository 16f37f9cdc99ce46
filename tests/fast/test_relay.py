"""The relay to a served container on no network (``container.relay.ExecRelay``): every
connection over one exec, each client getting its own bytes, and the container's side read as
hostile. Here the "exec" runs the relay's program on this machine (``LocalEngine``), next to a
server of the test's own; the served containers of tests/gate run it through the real engine."""

from __future__ import annotations

import contextlib
import http.server
import os
import random
import socket
import struct
import sys
import threading
import time

import pytest
import requests

from dialsgate.container.relay import CHUNK, ExecRelay
from dialsgate.container.serve import http_status


class LocalEngine:
    """``exec_argv`` runs the command here, as ``<engine> exec -i`` runs it in the container;
    ``replace`` (a list) gives the commands of the first execs instead, one each."""

    def __init__(self, replace: list[list[str]] | None = None):
        self.replace = replace or []

    def exec_argv(self, container, command, workdir=None, interactive=True):
        if self.replace:
            return self.replace.pop(0)
        assert command[0] == "python"
        return [sys.executable, *command[1:]]


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as MLServer

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.peers.add(self.client_address)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        size = int(self.path.rsplit("/", 1)[1])
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with contextlib.suppress(ConnectionError):
            for _ in range(size // CHUNK):
                self.wfile.write(b"x" * CHUNK)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    served = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    served.peers = set()
    served.daemon_threads = True
    threading.Thread(target=served.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield served
    served.shutdown()
    served.server_close()


def test_concurrent_clients_share_one_exec_and_each_gets_its_own_answers(server):
    relay = ExecRelay(LocalEngine(), "c", server.server_address[1])
    errors = []

    def client(index: int) -> None:
        draw = random.Random(index)
        with requests.Session() as session:
            for _ in range(6):
                body = os.urandom(draw.choice([0, 1, 5000, CHUNK - 1, CHUNK + 1, 3 * CHUNK + 7, 1_500_000]))
                answer = session.post(f"{relay.url}/v2/echo", data=body, timeout=30)
                if answer.status_code != 200 or answer.content != body:
                    errors.append(f"client {index}: {answer.status_code}, {len(answer.content)} bytes for {len(body)}")

    try:
        threads = [threading.Thread(target=client, args=(index,)) for index in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        relay.close()
    assert not errors, errors
    assert relay.execs == 1
    assert len(server.peers) == 8  # keep-alive: one connection per client, each carried on its own


def test_a_client_that_leaves_mid_answer_holds_no_other(server):
    relay = ExecRelay(LocalEngine(), "c", server.server_address[1])
    try:
        with socket.create_connection(("127.0.0.1", relay.port)) as leaving:
            leaving.sendall(b"GET /big/200000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert leaving.recv(CHUNK)  # the answer started; this client goes
        for _ in range(3):
            assert requests.post(f"{relay.url}/v2/echo", data=b"still here", timeout=30).content == b"still here"
    finally:
        relay.close()
    assert relay.execs == 1


def test_a_client_that_ends_its_sending_still_gets_the_answer():
    """A client's end of sending (``shutdown(SHUT_WR)``) reaches the server as its own, which
    then answers and closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_once():
        connection, _ = listener.accept()
        with connection:
            got = b""
            while chunk := connection.recv(CHUNK):
                got += chunk
            connection.sendall(b"got %d bytes" % len(got))

    threading.Thread(target=serve_once, daemon=True).start()
    relay = ExecRelay(LocalEngine(), "c", listener.getsockname()[1])
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=30) as client:
            client.sendall(b"y" * 100_000)
            client.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := client.recv(CHUNK):
                answer += chunk
        assert answer == b"got 100000 bytes"
    finally:
        relay.close()
        listener.close()


def test_nothing_listening_inside_closes_the_connection_here():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        free = probe.getsockname()[1]
    relay = ExecRelay(LocalEngine(), "c", free)
    try:
        started = time.monotonic()
        assert http_status(f"{relay.url}/v2/health/ready", timeout=10) is None
        assert time.monotonic() - started < 5
    finally:
        relay.close()


@pytest.mark.parametrize(
    "written",
    [
        pytest.param(b"cannot exec in a deleted state: unknown\n", id="an-engines-words"),
        pytest.param(struct.pack(">IBI", 1, 2, CHUNK + 1) + b"z" * (CHUNK + 1), id="a-frame-over-the-chunk"),
        pytest.param(struct.pack(">IBI", 1, 9, 4) + b"HTTP", id="an-unknown-kind"),
        pytest.param(struct.pack(">IBI", 1, 3, 4) + b"HTTP", id="a-close-with-bytes"),
        pytest.param(struct.pack(">IBI", 1, 2, 0), id="empty-data"),
    ],
)
def test_what_is_not_a_frame_ends_the_exec_and_no_byte_of_it_reaches_a_client(written, tmp_path):
    """The container's side is a folder's: whatever it writes that is not a frame ``MUX`` writes
    ends every connection, and reaches no client."""
    script = tmp_path / "exec.py"
    script.write_text(f"import os, sys, time\nos.write(1, {written!r})\ntime.sleep(30)\n")
    relay = ExecRelay(LocalEngine(replace=[[sys.executable, str(script)]]), "c", 1)
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            with contextlib.suppress(ConnectionError):
                while chunk := client.recv(CHUNK):
                    received += chunk
        assert received == b""
    finally:
        relay.close()


def test_the_next_connection_starts_the_exec_again_once_it_has_ended(server):
    """Before the container exists (the relay listens first) its exec fails at once: the
    connection is closed, and the next one starts a new exec."""
    relay = ExecRelay(LocalEngine(replace=[[sys.executable, "-c", "raise SystemExit(1)"]]), "c", server.server_address[1])
    try:
        assert http_status(f"{relay.url}/v2/echo", timeout=10) is None
        deadline = time.monotonic() + 10
        while relay._carrier.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert requests.post(f"{relay.url}/v2/echo", data=b"now", timeout=30).content == b"now"
    finally:
        relay.close()
    assert relay.execs == 2


def test_close_ends_every_connection_and_the_exec(server):
    relay = ExecRelay(LocalEngine(), "c", server.server_address[1])
    client = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
    client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
    answer = b""
    while not answer.endswith(b"ok") and (chunk := client.recv(CHUNK)):  # the head and the body may come apart
        answer += chunk
    assert answer.endswith(b"ok")
    process = relay._carrier._process
    relay.close()
    with client:
        try:
            rest = client.recv(CHUNK)
        except ConnectionError:
            rest = b""
    assert rest == b""
    assert process.poll() is not None


def test_close_returns_once_no_thread_waits_on_the_listener(server):
    """Closing a listening socket does not wake an accept blocked on it: a thread left there
    would, after a stop and continue of the process, accept on the next socket given the same
    number (tests/gate/test_stopped_and_continued.py shows the dropped connections)."""
    relay = ExecRelay(LocalEngine(), "closing", server.server_address[1])
    assert requests.post(f"{relay.url}/v2/echo", data=b"ok", timeout=30).content == b"ok"
    relay.close()
    assert [thread.name for thread in threading.enumerate() if thread.name == "relay-closing"] == []


def test_an_exec_that_cannot_start_ends_its_connection_and_the_next_one_tries_again(server):
    relay = ExecRelay(LocalEngine(replace=[["/nonexistent/engine-client"]]), "c", server.server_address[1])
    try:
        assert http_status(f"{relay.url}/v2/echo", timeout=10) is None
        assert requests.post(f"{relay.url}/v2/echo", data=b"again", timeout=30).content == b"again"
    finally:
        relay.close()
    assert relay.execs == 1
