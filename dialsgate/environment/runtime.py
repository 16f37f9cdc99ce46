"""Where a folder's model code runs, as the checks see it: a ``ModelRuntime``.

A runtime holds one server folder and its model file, at the paths model code sees them, and
starts the worker script (``worker_main.py``) there: ``worker_command(args)`` is the command line
of one fresh worker process (its stdin and stdout carry the worker protocol). Two kinds:

- ``container``: the worker container of the serving image (``dialsgate.container.worker``),
  the only runtime whose verdict can pass the gate;
- ``host``: a virtual environment of the image's pins on the host (``HostRuntime``), only on
  request (``--no-container``) for machines without a container engine.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import importlib.metadata
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from dialsgate.environment.serving import ServingEnvironment, cache_dir, locked
from dialsgate.fingerprint import file_sha256, tree_sha256
from dialsgate.plainfiles import copy_plain, copy_plain_file
from dialsgate.spawning import child_environment

#: The worker, run inside the runtime (its source is passed to ``python -c`` in a container).
WORKER_SCRIPT = Path(__file__).resolve().parent / "worker_main.py"


#: numba's own setting for where it may cache compiled code (nowhere when unset).
COMPILE_CACHE_VARIABLE = "NUMBA_CACHE_DIR"


#: Set to 1 to judge model code on the host (what ``--no-container`` sets for the layers).
NO_CONTAINER_ENV = "DIALSGATE_NO_CONTAINER"


def no_container_requested() -> bool:
    return os.environ.get(NO_CONTAINER_ENV, "").strip() == "1"


class ModelRuntime(abc.ABC):
    """One server folder and its model file where model code runs (see the module docstring)."""

    #: "container" or "host"
    kind = ""
    #: False only for the real serving image (which may hold more than its profile lists).
    standin = True
    #: The server folder and the model file as model code sees them.
    folder = ""
    model_file = ""

    @abc.abstractmethod
    def worker_command(self, args: list[str]) -> list[str]:
        """The command line of one fresh worker process (``args`` after the script)."""

    def process_environment(self) -> dict[str, str]:
        """The environment of the process started from ``worker_command`` (by default a copy of
        this one's: ``dialsgate.spawning``)."""
        return child_environment()

    @abc.abstractmethod
    def alone(self) -> contextlib.AbstractContextManager[tuple[str, str]]:
        """(folder, model file) of the server folder alone, as model code sees them (a context)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where model code runs, in a few words."""

    def close(self) -> None:  # noqa: B027  (a runtime that started nothing has nothing to stop)
        """Stop and remove what the runtime started."""


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


def gate_identity() -> str:
    """The gate's version and the worker it runs model code with (a checkout's version does not
    change with its code; the worker's source does)."""
    try:
        version = importlib.metadata.version("dialsgate")
    except importlib.metadata.PackageNotFoundError:
        version = "checkout"
    return f"{version} {file_sha256(WORKER_SCRIPT)}"


def compile_cache_dir(folder: Path, model_file: Path, seen_at: str, where: str) -> Path:
    """A compile cache for everything model code sees: a model that compiles its code when it
    loads (e.g. with numba) loads in a fraction of the time the second time.

    Keyed by the server folder's content, the model file's content and name, ``seen_at`` (where
    model code sees them: the mount paths, which carry the resource's Name), ``where`` (an image id
    or a host interpreter) and the gate (``gate_identity``). The cache files a folder's code
    writes are then read only by the same code with the same model in the same place: nothing it
    could not do itself. Never shared between folders, never in the folder."""
    model = file_sha256(model_file) if Path(model_file).is_file() else "no model file"
    parts = (tree_sha256(folder), model, Path(model_file).name, seen_at, where, gate_identity())
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
    return cache_dir() / "compile" / key


class HostRuntime(ModelRuntime):
    """The ``--no-container`` fallback: the folder as it lies, in a host serving environment."""

    kind = "host"

    def __init__(self, environment: ServingEnvironment, folder: Path, model_file: Path):
        self.environment = environment
        self.host_folder = Path(folder)
        self.folder, self.model_file = str(folder), str(model_file)
        self.compile_cache = compile_cache_dir(self.host_folder, Path(model_file), self.folder, str(environment.python))

    def worker_command(self, args: list[str]) -> list[str]:
        return [str(self.environment.python), "-I", "-B", str(WORKER_SCRIPT), *args]

    def process_environment(self) -> dict[str, str]:
        return worker_environment(self.compile_cache)

    @contextlib.contextmanager
    def alone(self) -> Iterator[tuple[str, str]]:
        # Copied to a place that depends only on the folder's content, so a model that compiles
        # its code when it loads finds its compile cache again (one run at a time).
        with locked(self.compile_cache.with_name(self.compile_cache.name + ".clean.lock")):
            folder = self.compile_cache.with_name(self.compile_cache.name + ".clean") / "model"
            shutil.rmtree(folder, ignore_errors=True)
            copy_plain(self.host_folder, folder)  # plain files only: no link, nor what it points at
            folder.chmod(0o755)
            model_file = folder / Path(self.model_file).name
            if not model_file.exists():
                copy_plain_file(Path(self.model_file), model_file)
            try:
                yield str(folder), str(model_file)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

    def describe(self) -> str:
        return f"host environment {self.environment.root} (--no-container: not the serving image)"
