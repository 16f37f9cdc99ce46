"""Talk to a model folder's handler running in its serving environment (``environment/worker_main.py``).

``WorkerHandler(contract, environment).predict(body) -> Outcome`` answers a V2 JSON body as
MLServer would: the response, or the HTTP status MLServer would give with the error message.
The handler runs in a separate ``python -I`` process of the serving environment, so the image's
package versions, not the caller's, decide every answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path

from dialsgate.contract.template import Contract
from dialsgate.environment.serving import ServingEnvironment, cache_dir
from dialsgate.fingerprint import tree_sha256
from dialsgate.transports.outcome import Outcome

#: numba's own setting for where it may cache compiled code (nowhere when unset).
COMPILE_CACHE_VARIABLE = "NUMBA_CACHE_DIR"


WORKER_SCRIPT = Path(__file__).resolve().parents[1] / "environment" / "worker_main.py"


class WorkerFailed(RuntimeError):
    """The worker process died or answered an operation with an error."""


def worker_environment(compile_cache: Path | None = None) -> dict:
    """The caller's environment without its Python settings; no bytecode written into the folder.

    ``compile_cache``: where compiled model code may be cached (``compile_cache_dir``); without
    it nothing is cached (as in DIALS)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTHON") and key not in ("VIRTUAL_ENV", COMPILE_CACHE_VARIABLE)
    }
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    if compile_cache is not None:
        environment[COMPILE_CACHE_VARIABLE] = str(compile_cache)
    return environment


def compile_cache_dir(folder: Path, environment: ServingEnvironment) -> Path:
    """A compile cache for one server folder's content in one serving environment (a model that
    compiles its code when it loads, e.g. with numba, loads in a fraction of the time the second
    time): never shared between folders, never in the folder."""
    key = hashlib.sha256(f"{tree_sha256(folder)}\0{environment.python}".encode()).hexdigest()[:16]
    return cache_dir() / "compile" / key


class Worker:
    """One worker process in a serving environment; ``call(op, **fields)`` returns its answer."""

    def __init__(self, environment: ServingEnvironment, cwd: Path | None = None, compile_cache: Path | None = None):
        self._stderr_tail: list[str] = []
        self.process = subprocess.Popen(
            [str(environment.python), "-I", "-B", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=str(cwd) if cwd else None,
            env=worker_environment(compile_cache),
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
        if self.process.poll() is not None:
            raise WorkerFailed(
                f"the serving worker exited (code {self.process.returncode}); its last output:\n{self.stderr_tail()}"
            )
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise WorkerFailed(
                f"the serving worker died during {op!r} (exit code {self.process.returncode}); its last output:\n{self.stderr_tail()}"
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


def run_once(environment: ServingEnvironment, op: str, **fields) -> dict:
    """One operation in a fresh worker (nothing imported before it)."""
    worker = Worker(environment)
    try:
        return worker.call(op, **fields)
    finally:
        worker.close()


class WorkerHandler:
    """The contract's handler, loaded in its serving environment; ``predict(body) -> Outcome``."""

    def __init__(
        self, contract: Contract, environment: ServingEnvironment, folder: Path | None = None, model_file: Path | None = None
    ):
        self.contract = contract
        folder = folder or contract.code_dir
        self.worker = Worker(environment, compile_cache=compile_cache_dir(Path(folder), environment))
        model_file = model_file or contract.model_file
        answer = self.worker.call(
            "load", folder=str(folder), handler=contract.handler, name=contract.name, model_file=str(model_file)
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
