"""Talk to a model folder's handler where its model code runs (``environment/worker_main.py``
in a ``ModelRuntime``: the worker container of the serving image, or the host fallback).

``WorkerHandler(contract, runtime).predict(body) -> Outcome`` answers a V2 JSON body as MLServer
would: the response, or the HTTP status MLServer would give with the error message. The handler
runs in a separate process of the runtime, so the image's package versions, not the caller's,
decide every answer.

Every call has a timeout and every answer line a cap (``dialsgate.limits``: 120 s for an
operation that imports the folder or loads the model file, 60 s per request to a loaded handler,
256 MiB per answer line): reaching one raises ``WorkerLimitReached`` naming it, and that worker
process is killed (in a container, by its id, through the engine).
"""

from __future__ import annotations

import os
import queue
import secrets
import subprocess
import threading

from dialsgate.contract.template import Contract
from dialsgate.environment.runtime import ModelRuntime
from dialsgate.limits import LIMITS, limit
from dialsgate.protocol import jsontext
from dialsgate.transports.outcome import Outcome

#: Operations that answer quickly once the handler is loaded; every other one imports the folder
#: or loads the model file and gets the load timeout.
REQUEST_OPERATIONS = ("predict", "metadata")
#: Kills, inside the worker's container, the processes whose command line holds the worker's id.
_KILL_BY_ID = (
    "import os, signal, sys\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        if sys.argv[1].encode() in open(f'/proc/{pid}/cmdline', 'rb').read() and int(pid) != os.getpid():\n"
    "            os.kill(int(pid), signal.SIGKILL)\n"
    "    except OSError:\n"
    "        pass\n"
)


class WorkerFailed(RuntimeError):
    """The worker process died or answered an operation with an error."""


class WorkerLimitReached(WorkerFailed):
    """A worker call reached a limit (its timeout, the answer-line cap): the worker was killed."""


def call_timeout(op: str) -> float:
    """Seconds a worker operation may take (``DIALSGATE_WORKER_CALL_TIMEOUT`` or ``..._LOAD_TIMEOUT``)."""
    return limit("worker_call_timeout") if op in REQUEST_OPERATIONS else limit("worker_load_timeout")


class Worker:
    """One worker process in a runtime; ``call(op, **fields)`` returns its answer."""

    def __init__(self, runtime: ModelRuntime, args: tuple[str, ...] = ()):
        self._stderr_tail: list[str] = []
        self.runtime = runtime
        # An id on its command line (ignored by the worker) finds the process again in a container.
        self.identity = f"--dialsgate-worker-id={secrets.token_hex(8)}"
        self.answer_cap = int(limit("worker_answer_bytes"))
        self.process = subprocess.Popen(
            runtime.worker_command([*args, self.identity]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=runtime.process_environment(),
        )
        # Drain stderr continuously (a chatty model must not block on a full pipe); keep the tail.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        # Answer lines are read by a thread of their own, so a call can stop waiting for one.
        self._answers: queue.Queue = queue.Queue()
        self._answer_reader = threading.Thread(target=self._read_answers, daemon=True)
        self._answer_reader.start()
        #: One call at a time: a line written, its answer read (the early work and the tests of a
        #: pytest session may share the handler's worker).
        self.turn = threading.Lock()
        #: How long a call waits for another's: the longest one call may take.
        self.turn_wait = limit("worker_load_timeout")

    def _drain(self) -> None:
        for raw in self.process.stderr:
            line = raw[:2000].decode(errors="replace").rstrip("\n")
            self._stderr_tail = (self._stderr_tail + [line])[-60:]

    def _read_answers(self) -> None:
        """One item per answer line: its bytes, ``None`` at the end, or ``OverflowError`` when a
        line is longer than the cap (then reading stops: the rest of that line is never held).
        Read in blocks into one buffer, so a line costs about its own size, once."""
        descriptor = self.process.stdout.fileno()
        pending = bytearray()
        while True:
            newline = pending.find(b"\n")
            if newline >= 0:
                line = bytes(pending[: newline + 1])
                del pending[: newline + 1]
                self._answers.put(line)
                continue
            if len(pending) > self.answer_cap:
                pending.clear()
                self._answers.put(OverflowError())
                return
            block = os.read(descriptor, 1 << 20)
            if not block:
                self._answers.put(None)
                return
            pending += block

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def call(self, op: str, **fields) -> dict:
        return self.send({"op": op, **fields}, op)

    def send(self, message: dict, what: str, timeout: float | None = None) -> dict:
        """Write one JSON line, read one answer line: within ``timeout`` seconds (default: the
        operation's limit) and ``answer_cap`` bytes, else the worker is killed and
        ``WorkerLimitReached`` names the limit."""
        if not self.turn.acquire(timeout=self.turn_wait):
            raise WorkerFailed(f"{what!r} was not sent: another caller held the worker for {self.turn_wait:g} s")
        try:
            return self._send(message, what, call_timeout(str(message.get("op"))) if timeout is None else timeout)
        finally:
            self.turn.release()

    def _send(self, message: dict, what: str, timeout: float) -> dict:
        if self.process.poll() is not None:
            raise WorkerFailed(
                f"the serving worker exited (code {self.process.returncode}); its last output:\n{self.stderr_tail()}"
            )
        try:
            self.process.stdin.write(jsontext.dumps(message) + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died: the empty answer below says how
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            op = str(message.get("op"))
            variable = LIMITS["worker_call_timeout" if op in REQUEST_OPERATIONS else "worker_load_timeout"].variable
            done = "did not load" if op == "load" else f"did not answer {what!r}"
            raise WorkerLimitReached(
                f"{done} within {timeout:g} s (the gate's limit; {variable} changes it): the worker was stopped"
            ) from None
        if isinstance(line, OverflowError):
            self.kill()
            raise WorkerLimitReached(
                f"the serving worker's answer to {what!r} is longer than {self.answer_cap:,} bytes (the cap of one "
                f"answer line; DIALSGATE_WORKER_ANSWER_BYTES changes it): it was not read, and the worker was stopped"
            )
        if line is None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
            raise WorkerFailed(
                f"the serving worker died during {what!r} (exit code {self.process.returncode}); its last output:\n{self.stderr_tail()}"
            )
        try:
            return jsontext.loads(line, f"the serving worker's answer to {what!r}")
        except jsontext.TooManyValues as error:
            raise WorkerLimitReached(str(error)) from None

    def kill(self) -> None:
        """Stop this worker process now: here, and inside its container (found by its id)."""
        if self.process.poll() is None:
            self.process.kill()
        exec_in = getattr(self.runtime, "exec", None)
        if callable(exec_in):
            try:
                exec_in(["python", "-I", "-c", _KILL_BY_ID, self.identity], timeout=30)
            except Exception:  # noqa: BLE001  (the container's removal at close ends it anyway)
                pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class WorkerHandler:
    """The contract's handler, loaded where its model code runs; ``predict(body) -> Outcome``."""

    def __init__(self, contract: Contract, runtime: ModelRuntime, clean: dict | None = None, spawn: bool = True):
        """``clean``: the clean-interpreter round trip's spec (``worker_main``'s load), when this
        worker is that round trip's fresh process too; what it saw is ``clean_facts``. ``spawn``:
        MLServer serves the folder with parallel workers (its default), which load under the
        spawn start method; false for ``parallel_workers`` 0 (``contract.server_settings``)."""
        self.contract = contract
        self.stopped: str | None = None  # the limit an earlier request reached (the worker is gone)
        self.worker = Worker(runtime)
        answer = self.worker.call(
            "load",
            folder=runtime.folder,
            handler=contract.handler,
            name=contract.name,
            model_file=runtime.model_file,
            clean=clean,
            spawn=spawn,
        )
        if answer.get("failed"):
            self.worker.close()
            raise WorkerFailed(f"{answer['error']}\n{answer.get('traceback', '')}")
        self.clean_facts: dict | None = answer.get("clean")

    def predict(self, body: dict) -> Outcome:
        if self.stopped:
            return Outcome(status=500, error=f"not sent: an earlier request reached a limit ({self.stopped})")
        try:
            answer = self.worker.call("predict", body=body)
        except WorkerLimitReached as error:
            # One limit reached is one answer that failed; the worker is gone, later requests say why.
            self.stopped = str(error)
            return Outcome(status=500, error=str(error))
        if answer.get("failed"):
            return Outcome(status=500, error=answer["error"])
        if answer["status"] != 200:
            return Outcome(status=answer["status"], error=answer["error"])
        return Outcome(response=answer["response"])

    def metadata(self) -> dict:
        """The model metadata MLServer serves at /v2/models/<name>."""
        answer = self.worker.call("metadata")
        if answer.get("failed"):
            raise WorkerFailed(answer["error"])
        return answer["metadata"]

    def close(self) -> None:
        self.worker.close()
