"""Reach a server inside a container that has no network: ``127.0.0.1:<port>`` on this machine,
every connection carried into the container's own namespace by one ``<engine> exec -i``.

The served container then needs no network at all (``--network none``): no route off the
machine, no bridge, no host network, on any engine (Docker, Docker Desktop, rootless Podman).
Inside, a few lines of the image's Python (``MUX``) connect to ``127.0.0.1:<inner port>`` once per
connection accepted here and carry each one's bytes as frames over the exec's stdin and stdout:
one exec for the whole run instead of one per connection (about 0.1 CPU-s each, eight at once
when the load check's clients connect). HTTP runs through it unchanged (keep-alive included). A
server's start is awaited by one exec that polls inside (``wait_until_ok``).

Frames, both ways: connection number (4 bytes), kind (1), length (4), then that many bytes. Here
the container's side is read as hostile: a frame that is not DATA (at most ``CHUNK`` bytes) or an
empty CLOSE, or any other byte, ends the exec and every connection it carried; nothing it writes
reaches a client but the bytes of a DATA frame (which the served model's answers are anyway).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import subprocess
import threading

from dialsgate.container.engine import Engine
from dialsgate.spawning import child_environment

CHUNK = 65536

#: A frame's head: connection number, kind, length of what follows.
HEAD = struct.Struct(">IBI")
OPEN, DATA, CLOSE = 1, 2, 3

#: Chunks of an answer held for a client that reads slower than the server writes (16 MiB): then
#: the exec's reading waits for it.
HELD_CHUNKS = 256

#: Runs inside the container: OPEN connects to the server, DATA goes to it, CLOSE ends what is
#: sent to it; what the server sends comes back as DATA, its end as CLOSE. A queue per connection
#: of at most 16 chunks (1 MiB): the served container's memory, which the memory check measures,
#: holds little of the gate's requests; a server slower to read one connection holds the others'
#: requests only that long.
MUX = r"""
import os, queue, socket, struct, sys, threading
PORT, HEAD, OPEN, DATA, CLOSE = int(sys.argv[1]), struct.Struct(">IBI"), 1, 2, 3
lock = threading.Lock()
def send(number, kind, data=b""):
    frame = memoryview(HEAD.pack(number, kind, len(data)) + data)
    with lock:
        while frame:
            frame = frame[os.write(1, frame):]
def down(number, connection):
    try:
        while True:
            data = connection.recv(65536)
            if not data:
                break
            send(number, DATA, data)
    except OSError:
        pass
    send(number, CLOSE)
    connection.close()
def up(connection, pending):
    try:
        while True:
            parts = [pending.get()]
            while parts[-1] is not None and not pending.empty():
                parts.append(pending.get())
            connection.sendall(b"".join(part for part in parts if part is not None))
            if parts[-1] is None:
                connection.shutdown(socket.SHUT_WR)
                return
    except OSError:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def read(size):
    got = b""
    while len(got) < size:
        part = os.read(0, size - len(got))
        if not part:
            return None
        got += part
    return got
pending = {}
while True:
    head = read(HEAD.size)
    if head is None:
        break
    number, kind, length = HEAD.unpack(head)
    data = read(length) if length else b""
    if data is None:
        break
    if kind == OPEN:
        try:
            connection = socket.create_connection(("127.0.0.1", PORT))
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            send(number, CLOSE)
            continue
        pending[number] = queue.Queue(maxsize=16)
        threading.Thread(target=down, args=(number, connection), daemon=True).start()
        threading.Thread(target=up, args=(connection, pending[number]), daemon=True).start()
    elif number in pending:
        pending[number].put(data if kind == DATA else None)
        if kind == CLOSE:
            del pending[number]
os._exit(0)
"""

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
    """Listens on 127.0.0.1 (``port``); ``close()`` stops listening and ends every connection.
    The exec starts with the first connection, and again with the next one after it ended (the
    container was not there yet, or was restarted)."""

    def __init__(self, engine: Engine, container: str, inner_port: int):
        self.engine, self.container, self.inner_port = engine, container, inner_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._carrier: _Carrier | None = None
        self._closed = False
        #: How many execs have carried connections (one per run unless the container was not there yet).
        self.execs = 0
        self._accepting = threading.Thread(target=self._accept, name=f"relay-{container}", daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_ok(self, path: str, seconds: float) -> bool:
        """Wait, inside the container, until ``path`` answers 200 (True) or ``seconds`` pass or the
        container stops (False). Polling through the relay instead costs a connection per poll,
        and the server's start shares the CPU with them."""
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
            # Each frame is sent on at once: no wait for the client's delayed acknowledgement.
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed:
                    connection.close()
                    return
                if self._carrier is None or not self._carrier.running():
                    argv = self.engine.exec_argv(self.container, ["python", "-I", "-c", MUX, str(self.inner_port)])
                    try:
                        self._carrier = _Carrier(argv)
                    except OSError:  # no engine client to run: this connection ends, the next one tries again
                        self._carrier = None
                        connection.close()
                        continue
                    self.execs += 1
                carrier = self._carrier
            carrier.carry(connection)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            carrier = self._carrier
        # The listener's number is freed only once its accept has returned: on Linux closing it
        # does not wake an accept blocked on it, and a stop and continue of this process (Ctrl-Z,
        # a debugger, a profiler) restarts that accept on whatever socket has the number by then
        # (the next relay's listener, whose connections this closed relay then drops). A
        # connection of our own wakes it on every system; it drops it, the relay being closed.
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        if self._accepting is not threading.current_thread():
            self._accepting.join(timeout=10)
        with contextlib.suppress(OSError):
            self._listener.close()
        if carrier is not None:
            carrier.close()


class _Carrier:
    """One exec of ``MUX`` and the connections it carries."""

    def __init__(self, argv: list[str]):
        self._process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, env=child_environment()
        )
        self._lock = threading.Lock()  # the table of connections
        self._sending = threading.Lock()  # one frame at a time on the exec's stdin
        self._carried: dict[int, _Carried] = {}
        self._last = 0
        self._ended = False
        threading.Thread(target=self._read_frames, name="relay-frames", daemon=True).start()

    def running(self) -> bool:
        return not self._ended and self._process.poll() is None

    def carry(self, connection: socket.socket) -> None:
        with self._lock:
            if self._ended:
                connection.close()
                return
            self._last += 1
            number, carried = self._last, _Carried(connection)
            self._carried[number] = carried
        threading.Thread(target=carried.deliver, name=f"relay-down-{number}", daemon=True).start()
        if self._send(number, OPEN):
            threading.Thread(target=self._up, args=(number, connection), name=f"relay-up-{number}", daemon=True).start()

    def _up(self, number: int, connection: socket.socket) -> None:
        """What the client sends, as DATA frames; its end (or its error) as CLOSE."""
        try:
            while True:
                data = connection.recv(CHUNK)
                if not data or not self._send(number, DATA, data):
                    break
        except OSError:
            pass
        self._send(number, CLOSE)

    def _send(self, number: int, kind: int, data: bytes = b"") -> bool:
        frame = memoryview(HEAD.pack(number, kind, len(data)) + data)
        with self._sending:
            try:
                while frame:
                    frame = frame[self._process.stdin.write(frame) :]
            except (OSError, ValueError):  # the exec has ended: its reader ends every connection
                return False
        return True

    def _read(self, size: int) -> bytes | None:
        got = b""
        while len(got) < size:
            part = self._process.stdout.read(size - len(got))
            if not part:
                return None
            got += part
        return got

    def _read_frames(self) -> None:
        try:
            while True:
                head = self._read(HEAD.size)
                if head is None:
                    return
                number, kind, length = HEAD.unpack(head)
                if not (kind == DATA and 0 < length <= CHUNK or kind == CLOSE and length == 0):
                    return  # not the frames MUX writes (an engine's error, or a folder's bytes): nothing is passed on
                data = self._read(length) if length else b""
                if data is None:
                    return
                with self._lock:
                    carried = self._carried.get(number) if kind == DATA else self._carried.pop(number, None)
                if carried is not None:  # else a connection this side has ended already
                    carried.hold(data if kind == DATA else None)
        except (OSError, ValueError):
            return
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            self._ended = True
            carried, self._carried = list(self._carried.values()), {}
        if self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(Exception):
            self._process.wait(timeout=10)
        for one in carried:
            one.end()


class _Carried:
    """One client's connection: what the server sent, held in order until the client takes it."""

    def __init__(self, connection: socket.socket):
        self.connection = connection
        self._held: queue.Queue[bytes | None] = queue.Queue(maxsize=HELD_CHUNKS)
        self._gone = threading.Event()

    def hold(self, data: bytes | None) -> None:
        """Queue ``data`` (None: the server's end); waits while the client reads slower, not once it is gone."""
        while not self._gone.is_set():
            try:
                self._held.put(data, timeout=0.5)
                return
            except queue.Full:
                continue

    def end(self) -> None:
        """The exec ended: the connection ends once what is held has been delivered, or at once
        when the client holds it without reading (the relay's close never waits for a client)."""
        try:
            self._held.put_nowait(None)
        except queue.Full:
            self._gone.set()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def deliver(self) -> None:
        try:
            while True:
                parts = [self._held.get()]
                while parts[-1] is not None and not self._held.empty():
                    parts.append(self._held.get())
                self.connection.sendall(b"".join(part for part in parts if part is not None))
                if parts[-1] is None:
                    break
        except OSError:
            pass
        finally:
            self._gone.set()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
