"""Reach a server inside a container that has no network: ``127.0.0.1:<port>`` on this machine,
each connection carried into the container's own namespace by one ``<engine> exec -i``.

The served container then needs no network at all (``--network none``): no route off the
machine, no bridge, no host network, on any engine (Docker, Docker Desktop, rootless Podman).
Inside, a few lines of the image's Python connect to ``127.0.0.1:<inner port>`` and copy bytes
between that socket and their stdin/stdout; here, a thread per direction copies between the
accepted socket and that process. HTTP runs through it unchanged (keep-alive included); each new
connection costs one ``exec`` (about 0.1 s); a server's start is awaited by one exec that
polls inside (``wait_until_ok``).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading

from dialsgate.container.engine import Engine

#: Runs inside the container: one TCP connection to the server, spliced onto stdin/stdout.
INNER = r"""
import os, socket, sys, threading
connection = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def upstream():
    while True:
        data = os.read(0, 65536)
        if not data:
            connection.shutdown(socket.SHUT_WR)
            return
        connection.sendall(data)
threading.Thread(target=upstream, daemon=True).start()
while True:
    data = connection.recv(65536)
    if not data:
        break
    os.write(1, data)
"""

CHUNK = 65536

#: Polls ``http://127.0.0.1:<port><path>`` inside the container until it answers 200 (exit 0) or
#: the seconds given run out (exit 1): a server's start awaited by one exec, not one per poll.
WAIT_UNTIL_OK = r"""
import sys, time, urllib.error, urllib.request
url, deadline, delay = sys.argv[1], time.monotonic() + float(sys.argv[2]), 0.05
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except (urllib.error.URLError, OSError):
        pass
    time.sleep(delay)
    delay = min(delay * 1.5, 0.25)
sys.exit(1)
"""


class ExecRelay:
    """Listens on 127.0.0.1 (``port``); ``close()`` stops listening and ends every connection."""

    def __init__(self, engine: Engine, container: str, inner_port: int):
        self.engine, self.container, self.inner_port = engine, container, inner_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._processes: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name=f"relay-{container}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_ok(self, path: str, seconds: float) -> bool:
        """Wait, inside the container, until ``path`` answers 200 (True) or ``seconds`` pass or the
        container stops (False). Polling through the relay instead costs an exec per poll, and the
        server's start shares the CPU with them."""
        inner = f"http://127.0.0.1:{self.inner_port}{path}"
        try:
            done = self.engine.exec(self.container, ["python", "-I", "-c", WAIT_UNTIL_OK, inner, f"{seconds:.1f}"],
                                    timeout=seconds + 30)  # fmt: skip
        except Exception:  # noqa: BLE001  (the caller's own polling then finds why)
            return False
        return done.returncode == 0

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._carry, args=(connection,), daemon=True).start()

    def _carry(self, connection: socket.socket) -> None:
        process = subprocess.Popen(
            self.engine.exec_argv(self.container, ["python", "-I", "-c", INNER, str(self.inner_port)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        with self._lock:
            if self._closed:
                process.kill()
            self._processes.add(process)
        up = threading.Thread(target=self._to_container, args=(connection, process), daemon=True)
        up.start()
        try:
            while True:
                data = process.stdout.read(CHUNK)
                if not data:
                    break
                connection.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
            if process.poll() is None:
                process.kill()
            process.wait()
            with self._lock:
                self._processes.discard(process)

    @staticmethod
    def _to_container(connection: socket.socket, process: subprocess.Popen) -> None:
        try:
            while True:
                data = connection.recv(CHUNK)
                if not data:
                    break
                process.stdin.write(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            processes = list(self._processes)
        with contextlib.suppress(OSError):
            self._listener.close()
        for process in processes:
            if process.poll() is None:
                process.kill()
