"""Talk to a model folder's handler where its model code runs (``environment/worker_main.py``
in a ``ModelRuntime``: the worker container of the serving image, or the host fallback).

``WorkerHandler(contract, runtime).predict(body) -> Outcome`` answers a V2 JSON body as MLServer
would: the response, or the HTTP status MLServer would give with the error message. The handler
runs in a separate process of the runtime, so the image's package versions, not the caller's,
decide every answer.
"""

from __future__ import annotations

import json
import subprocess
import threading

from dialsgate.contract.template import Contract
from dialsgate.environment.runtime import ModelRuntime
from dialsgate.transports.outcome import Outcome


class WorkerFailed(RuntimeError):
    """The worker process died or answered an operation with an error."""


class Worker:
    """One worker process in a runtime; ``call(op, **fields)`` returns its answer."""

    def __init__(self, runtime: ModelRuntime, args: tuple[str, ...] = ()):
        self._stderr_tail: list[str] = []
        self.process = subprocess.Popen(
            runtime.worker_command(list(args)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=runtime.process_environment(),
        )
        # Drain stderr continuously (a chatty model must not block on a full pipe); keep the tail.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.process.stderr:
            self._stderr_tail = (self._stderr_tail + [line.rstrip("\n")])[-60:]

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def call(self, op: str, **fields) -> dict:
        return self.send({"op": op, **fields}, op)

    def send(self, message: dict, what: str) -> dict:
        """Write one JSON line, read one answer line."""
        if self.process.poll() is not None:
            raise WorkerFailed(
                f"the serving worker exited (code {self.process.returncode}); its last output:\n{self.stderr_tail()}"
            )
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died: the empty answer below says how
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise WorkerFailed(
                f"the serving worker died during {what!r} (exit code {self.process.returncode}); its last output:\n{self.stderr_tail()}"
            )
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_once(runtime: ModelRuntime, op: str, **fields) -> dict:
    """One operation in a fresh worker (nothing imported before it)."""
    worker = Worker(runtime)
    try:
        return worker.call(op, **fields)
    finally:
        worker.close()


class WorkerHandler:
    """The contract's handler, loaded where its model code runs; ``predict(body) -> Outcome``."""

    def __init__(self, contract: Contract, runtime: ModelRuntime):
        self.contract = contract
        self.worker = Worker(runtime)
        answer = self.worker.call(
            "load", folder=runtime.folder, handler=contract.handler, name=contract.name, model_file=runtime.model_file
        )
        if answer.get("failed"):
            self.worker.close()
            raise WorkerFailed(f"{answer['error']}\n{answer.get('traceback', '')}")

    def predict(self, body: dict) -> Outcome:
        answer = self.worker.call("predict", body=body)
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
