"""The worker container: where every check runs a folder's model code, sandboxed.

One container of the serving image (the real one, or the stand-in with the folder's image
packages) per gate layer or pytest session. Each worker process (the handler, which is the
clean-interpreter round trip's too, the one-off questions) is a fresh ``python -I -B`` started in it by
``<engine> exec -i``, speaking the worker protocol over stdin and stdout. The container is started
as DIALS runs the folder, and tighter:

- network ``none``;
- the image's user (uid 1000), no capabilities, no new privileges (``container.sandbox``, the
  rules the served container follows too);
- a read-only root filesystem: model code writes only to ``/scratch``, ``/tmp`` and the image
  user's home, all three in memory (tmpfs, counted in the memory limit), none on this machine;
- the server folder read-only at ``/mnt/<Name>`` (where ``mlserver start`` finds it) and the model
  file read-only at ``/mnt/model/<file>``: copies, readable by uid 1000 whatever the host's
  umask or sub-uid mapping (rootless Podman), so nothing of the user's is mounted;
- a scratch directory ``/scratch`` (the working directory) in memory, no host path;
- a memory limit, swap included (the template's ``Limits.memory`` when plausible, else
  ``DEFAULT_MEMORY``), a CPU limit (``Limits.cpu`` when plausible, else ``DEFAULT_CPUS``; never
  more than the host has) and a process limit (``PIDS_LIMIT``);
- its first process reads its stdin until the gate closes it: when the gate process ends, even
  killed, the container ends, and ``--rm`` removes it; ``close`` removes it at once.

A model's compiled code (numba's cache) is carried between runs that see exactly the same
things: the same folder and model file contents, at the same paths (the resource's Name), in the
same image, by the same gate (``compile_cache_dir``). A cache written by one folder's code is
only ever read by that same code, which could do anything the cache could. numba's own cache
files only, copied out of ``/scratch`` after the run (``.nbi``/``.nbc``, regular files, bounded
in size, read with a cap) and back in before the next. The copies keep the files' modification
times: numba's index is valid only for a source of the same time and size.

Settings (environment): the engine's (``container.engine``: ``DIALSGATE_ENGINE``, ``DOCKER_HOST``)
and ``DIALSGATE_WORKER_START_TIMEOUT`` (seconds, default 60).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import select
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from dialsgate.container.engine import Engine, ServingError
from dialsgate.container.sandbox import (
    PIDS_LIMIT,
    image_facts,
    image_user,
    limits_for,
    writable_places,
)
from dialsgate.container.serve import make_readable_by_others
from dialsgate.environment.runtime import COMPILE_CACHE_VARIABLE, WORKER_SCRIPT, ModelRuntime, compile_cache_dir
from dialsgate.plainfiles import copy_plain, copy_plain_file, plain_kind
from dialsgate.spawning import child_environment

#: The scratch directory lives in memory (counted in the memory limit).
SCRATCH = "/scratch"
SCRATCH_SIZE = "1g"
COMPILE_CACHE_INSIDE = f"{SCRATCH}/compile-cache"
#: numba's cache files: index and data; nothing else comes out of the sandbox.
COMPILE_CACHE_SUFFIXES = (".nbi", ".nbc")
COMPILE_CACHE_MAX_BYTES = 256 * 2**20
#: The archive of the cache read from the container stops here (its headers on top of the files).
COMPILE_CACHE_MAX_ARCHIVE = COMPILE_CACHE_MAX_BYTES + 16 * 2**20
#: Run inside: a tar of numba's regular cache files under the cache folder, on stdout.
COMPILE_CACHE_PACKER = (
    "import os, stat, sys, tarfile\n"
    "root, suffixes = sys.argv[1], tuple(sys.argv[2:])\n"
    "with tarfile.open(fileobj=sys.stdout.buffer, mode='w|') as archive:\n"
    "    for folder, _, names in os.walk(root):\n"
    "        for name in sorted(names):\n"
    "            path = os.path.join(folder, name)\n"
    "            if name.endswith(suffixes) and stat.S_ISREG(os.lstat(path).st_mode):\n"
    "                archive.add(path, arcname=os.path.relpath(path, root), recursive=False)"
)
START_TIMEOUT_ENV = "DIALSGATE_WORKER_START_TIMEOUT"
WORKER_NAME_PREFIX = "dialsgate-worker-"
#: The container's first process: says it is up, then waits for the gate to close its stdin.
KEEPER = "import sys; print('ready', flush=True); sys.stdin.read()"


def mount_name(contract) -> str:
    """The folder's place in the container, as ``mlserver start /mnt/<Name>`` has it."""
    return f"/mnt/{contract.name}"


def _readable_copy(source: Path, target: Path) -> None:
    """A copy of a file or folder readable by any uid: the container's user may be a sub-uid of
    ours (rootless) or uid 1000 of the host (rootful). Plain files only: a link, FIFO or device
    is never copied, nor what it points at (``plainfiles.copy_plain``)."""
    if plain_kind(source) == "a folder":
        copy_plain(source, target)
        make_readable_by_others(target)
    else:  # alone in a folder of its own, which is mounted
        copy_plain_file(source, target)
        make_readable_by_others(target.parent)


def _start_timeout() -> float:
    raw = os.environ.get(START_TIMEOUT_ENV, "").strip()
    try:
        return float(raw) if raw else 60.0
    except ValueError:
        raise ServingError(f"{START_TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None


class WorkerContainer(ModelRuntime):
    """A running worker container for one folder (see the module docstring); ``close()`` removes it."""

    kind = "container"

    def __init__(self, contract, image: str, folder: Path | None = None, model_file: Path | None = None):
        self.image = image
        self.engine = Engine.from_settings()
        self.name = f"{WORKER_NAME_PREFIX}{re.sub(r'[^A-Za-z0-9_.-]', '-', contract.name)}-{secrets.token_hex(4)}"
        self.memory, self.cpus, self.limits = limits_for(contract)
        folder = Path(folder or contract.code_dir)
        model_file = Path(model_file or contract.model_file)
        identity, self.user, self.standin = image_facts(image, self.engine)
        self.image_user = image_user(identity, self.user)
        self.writable = writable_places(self.image_user, self.engine.is_podman)
        self.folder = mount_name(contract)
        self.model_file = f"/mnt/model/{model_file.name}"
        self.start_seconds = float("nan")
        self._worker_source = WORKER_SCRIPT.read_text()
        # The copies: our own temporary folder (0700); what is inside is readable by any uid.
        self._copies = Path(tempfile.mkdtemp(prefix="dialsgate-worker-"))
        self._keeper = None
        self.compile_cache: Path | None = None
        try:
            _readable_copy(folder, self._copies / "folder")
            _readable_copy(model_file, self._copies / "model" / model_file.name)
            # Keyed by the copies: what model code sees, where it sees it, in which image.
            self.compile_cache = compile_cache_dir(
                self._copies / "folder", self._copies / "model" / model_file.name, f"{self.folder}\0{self.model_file}", identity
            )
            self._start()
            self._restore_compile_cache()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifetime

    def run_arguments(self) -> list[str]:
        """``<engine> run`` with everything the container is started with (see the module docstring)."""
        return self.engine.argv(
            "run", "-i", "--rm", "--name", self.name,
            "--network", "none",
            "--user", self.user,
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--memory", str(self.memory), "--memory-swap", str(self.memory),
            "--cpus", f"{self.cpus:g}",
            "--pids-limit", str(PIDS_LIMIT),
            "--read-only",
            "--mount", f"type=bind,source={self._copies / 'folder'},target={self.folder},readonly",
            "--mount", f"type=bind,source={self._copies / 'model'},target=/mnt/model,readonly",
            # (No --workdir here: the engine would create it over the tmpfs, owned by root, 0755.)
            "--tmpfs", f"{SCRATCH}:rw,exec,nosuid,nodev,size={SCRATCH_SIZE},mode=1777",
            *[argument for path, options in self.writable.items() for argument in ("--tmpfs", f"{path}:{options}")],
            "--env", f"HOME={self.image_user.home}",
            "--env", "PYTHONDONTWRITEBYTECODE=1",
            "--env", f"{COMPILE_CACHE_VARIABLE}={COMPILE_CACHE_INSIDE}",
            "--label", "org.dialsgate.worker=1",
            self.image, "python", "-I", "-c", KEEPER,
        )  # fmt: skip

    def _start(self) -> None:
        started = time.monotonic()
        self._keeper = subprocess.Popen(
            self.run_arguments(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_environment()
        )
        deadline = started + _start_timeout()
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._keeper.stdout], [], [], max(0.0, remaining))
            if not ready:
                raise ServingError(f"the worker container {self.name} did not start within {_start_timeout():.0f} s")
            chunk = os.read(self._keeper.stdout.fileno(), 64)
            if not chunk:
                self._keeper.wait(timeout=30)
                error = self._keeper.stderr.read().decode(errors="replace").strip()
                raise ServingError(
                    f"the worker container of {self.image} did not start (exit {self._keeper.returncode}): {error[-2000:]}"
                )
            line += chunk
        self.start_seconds = time.monotonic() - started

    def close(self) -> None:
        if self._keeper is not None:
            with contextlib.suppress(Exception):
                self._save_compile_cache()
            with contextlib.suppress(ServingError):
                self.engine.remove(self.name)
            with contextlib.suppress(Exception):
                self._keeper.stdin.close()
            try:
                self._keeper.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._keeper.kill()
                self._keeper.wait()
            self._keeper = None
        shutil.rmtree(self._copies, ignore_errors=True)

    # ------------------------------------------------------------------ the runtime

    def worker_command(self, args: list[str]) -> list[str]:
        source = self._worker_source
        return self.engine.exec_argv(self.name, ["python", "-I", "-B", "-c", source, *args], workdir=SCRATCH)

    @contextlib.contextmanager
    def alone(self) -> Iterator[tuple[str, str]]:
        # The folder is alone by construction: nothing else of the host is in the container.
        yield self.folder, self.model_file

    def describe(self) -> str:
        return (
            f"worker container of {self.image} (network none, user {self.user}, folder read-only at {self.folder}, {self.limits})"
        )

    def exec(self, command: list[str], stdin: bytes = b"", timeout: float = 120) -> subprocess.CompletedProcess:
        """One command in the container (as its user, in /scratch)."""
        return self.engine.exec(self.name, command, stdin=stdin, workdir=SCRATCH, timeout=timeout)

    # ------------------------------------------------------------------ compile cache

    def _restore_compile_cache(self) -> None:
        archive = compile_cache_archive(self.compile_cache)
        if archive is None:
            return
        self.exec(
            ["python", "-I", "-c", "import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|').extractall(sys.argv[1])",
             COMPILE_CACHE_INSIDE],
            stdin=archive,
        )  # fmt: skip

    def _save_compile_cache(self) -> None:
        if self.compile_cache is None:
            return
        packed = self.engine.output_capped(
            self.engine.exec_argv(
                self.name, ["python", "-I", "-c", COMPILE_CACHE_PACKER, COMPILE_CACHE_INSIDE, *COMPILE_CACHE_SUFFIXES],
                workdir=SCRATCH,
            ),
            COMPILE_CACHE_MAX_ARCHIVE, timeout=120,
        )  # fmt: skip
        if not packed:
            return
        with tarfile.open(fileobj=io.BytesIO(packed), mode="r") as archive:
            kept = compile_cache_members(archive)
            if not kept:
                return
            # Staged beside the cache, so that it takes the cache's place in one rename.
            self.compile_cache.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.compile_cache.parent))
            archive.extractall(staging, members=kept, filter="data")
        put_in_place(staging, self.compile_cache)


def put_in_place(staging: Path, cache: Path) -> None:
    """``staging`` becomes ``cache``. Two runs of the same folder and model (e.g. two tox
    environments at once) save the same cache: when the other one's arrives between the removal
    and the rename, it stays, and this one goes (the two are alike)."""
    shutil.rmtree(cache, ignore_errors=True)
    try:
        staging.rename(cache)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)


def compile_cache_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo] | None:
    """The members of a cache archive that may come back to the host: numba's regular cache
    files, by name, within ``COMPILE_CACHE_MAX_BYTES`` in all (None beyond it)."""
    kept, total = [], 0
    for member in archive.getmembers():
        if not member.isfile() or not member.name.endswith(COMPILE_CACHE_SUFFIXES):
            continue
        total += member.size
        if total > COMPILE_CACHE_MAX_BYTES:
            return None
        kept.append(member)
    return kept


def compile_cache_archive(cache: Path | None) -> bytes | None:
    """What a new container gets of a host compile cache: numba's regular cache files under
    ``cache`` (no link followed, nothing else), within ``COMPILE_CACHE_MAX_BYTES``; None when
    there are none."""
    if cache is None or not cache.is_dir() or cache.is_symlink():
        return None
    buffer, total, added = io.BytesIO(), 0, 0
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for folder, _, names in os.walk(cache):
            for name in sorted(names):
                path = Path(folder) / name
                try:
                    status = path.lstat()
                    if not name.endswith(COMPILE_CACHE_SUFFIXES) or not stat.S_ISREG(status.st_mode):
                        continue
                    total += status.st_size
                    if total > COMPILE_CACHE_MAX_BYTES:
                        return None
                    archive.add(path, arcname=str(path.relative_to(cache)), recursive=False)
                except FileNotFoundError:
                    continue  # another run is replacing the cache (``put_in_place``): numba compiles what is missing
                added += 1
    return buffer.getvalue() if added else None
