"""Waiting for the served model (``container.serve.wait_until_model_ready``): when the container
is gone, the wait ends with why, whatever the relay answered in its place."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dialsgate.container.serve import ModelNotReady, http_status, last_exception_line, wait_until_model_ready


@pytest.fixture
def not_http():
    """A port that answers every connection with something that is not HTTP (the engine's own
    words, as an exec prints them once the container has been removed), then closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # so the loop sees the end of the test
    stop = threading.Event()

    def answer():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(b"cannot exec in a deleted state: unknown\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_an_answer_that_is_not_http_is_no_answer(not_http):
    assert http_status(f"{not_http}/v2/health/ready", timeout=2) is None


def test_a_container_gone_ends_the_wait_with_why(not_http):
    with pytest.raises(ModelNotReady, match=r"the container stopped \(status exited, exit code 0\) before model 'm' was ready"):
        wait_until_model_ready(
            not_http, "m", timeout=30, still_running=lambda: "the container stopped (status exited, exit code 0)"
        )


#: The end of MLServer 1.5.0's log when the model's load failed in its inference-pool worker.
LOG = """2026-12-08 00:43:09,101 [mlserver] INFO - Loading model 'm'
Traceback (most recent call last):
  File "/opt/mlserver/.venv/lib/python3.10/site-packages/mlserver/parallel/dispatcher.py", line 87, in _wait
    response_message = await future
mlserver.parallel.errors.WorkerError: builtins.OSError: [Errno 98] Address already in use
2026-12-08 00:43:09,267 [mlserver.parallel] INFO - Waiting for shutdown of default inference pool...
INFO:     Finished server process [1]
"""


def test_the_cause_of_a_model_never_ready_is_its_logs_last_exception_line():
    assert last_exception_line(LOG) == "WorkerError: OSError: [Errno 98] Address already in use"
    assert last_exception_line("INFO:     Uvicorn running\nValueError\n  KeyError: indented\n") == "ValueError"
    assert last_exception_line("INFO: started\nERROR: no exception line here\n") is None


def test_a_hostile_exception_line_is_searched_only_as_far_as_it_is_quoted():
    """A folder's code writes the log: a 4 MB line of dotted names (searched whole, about 14 s for
    64 KiB and growing with its square) must not hold the gate."""
    probe = "from dialsgate.container.serve import last_exception_line as f; print(len(f('ValueError: ' + 'a.' * 2_000_000)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})  # fmt: skip
    assert done.returncode == 0 and int(done.stdout) <= 500, done.stderr
