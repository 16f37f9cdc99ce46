"""Serve a DIALS model folder in its serving image, the way ``dismcli start-api`` does.

``dismcli start-api -r <ResourceKey>`` runs the template's ``Image`` with the command
``mlserver start /mnt/<Name>``, the build folder bind-mounted read-only at ``/mnt/<Name>`` and
``PYTHONDONTWRITEBYTECODE=1``. :func:`serve_model_folder` does the same through testcontainers,
waits until the *model* (not only the server) is ready, and always removes the container.

testcontainers starts and stops the served container through the engine's API (the docker SDK,
which finds the engine by ``DOCKER_HOST``, the setting the engine's client reads too): that is the
only use of the docker SDK in dialsgate. Everything else about the container (its image facts,
its state and logs while it starts, requests carried in by ``exec``) goes through the one
engine client, ``container.engine.Engine``.

The container is confined as the worker container is (``container.sandbox``): the image's user,
no capabilities, no new privileges, the memory (swap included), CPU and process limits of
``limits_for``, and a read-only root with ``/tmp`` and the image user's home as small tmpfs
mounts. What MLServer itself writes goes to ``/tmp`` (``SERVER_WRITES``: its Prometheus
multiprocess folder and its environments folder, by default under the working directory, which is
read-only here); everything else (numba's, matplotlib's, fontconfig's caches) goes to ``$HOME``,
as in DIALS, where the root is the image's own.

Settings (environment):

``DIALSGATE_DOCKER_NETWORK``
    ``none`` (default; also ``auto``): the container has no network; requests reach MLServer's
    port 8080 inside through ``container.relay`` (127.0.0.1 here, ``<engine> exec`` there), so
    the model code it serves has no route off the machine, on any engine. ``host``: host
    networking, MLServer bound to 127.0.0.1 on free ports. ``bridge``: Docker's default bridge,
    container port 8080 (and 8081 for gRPC) published on free ports of 127.0.0.1.
``DIALSGATE_READY_TIMEOUT``
    seconds to wait for the model to become ready (default 120).

Used by the server layer (``dialsgate/pytest_plugin/layers/test_server_*.py``), the pre-deploy gate and ``benchmarks``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dialsgate.container.engine import NETWORK_ENV, Engine, ServingError, resolve_network_mode
from dialsgate.container.image import ensure_image
from dialsgate.container.lifeline import Lifeline
from dialsgate.container.relay import ExecRelay
from dialsgate.container.sandbox import (
    PIDS_LIMIT,
    image_facts,
    image_user,
    limits_for,
    writable_places,
)
from dialsgate.contract.build import build
from dialsgate.plainfiles import copy_plain, plain_kind

READY_TIMEOUT_ENV = "DIALSGATE_READY_TIMEOUT"


DEFAULT_READY_TIMEOUT = 120.0


#: MLServer's ports inside the container when it is not on the host's network.
CONTAINER_HTTP_PORT = 8080


CONTAINER_GRPC_PORT = 8081


LOG_TAIL_LINES = 200


#: Containers that serve a model folder are named <prefix><model Name>-<random>.
SERVED_NAME_PREFIX = "dialsgate-serve-"


#: Where MLServer writes, by its settings (environment): both default to the working directory.
SERVER_WRITES = {
    "MLSERVER_METRICS_DIR": "/tmp/mlserver/metrics",  # Prometheus' multiprocess files
    "MLSERVER_ENVIRONMENTS_DIR": "/tmp/mlserver/envs",  # unpacked environment tarballs (none here)
}


class ModelNotReady(ServingError):
    """The container ran but the model did not become ready; the message carries its log."""


def ready_timeout() -> float:
    raw = os.environ.get(READY_TIMEOUT_ENV, "")
    if not raw.strip():
        return DEFAULT_READY_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ServingError(f"{READY_TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise ServingError(f"{READY_TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return value


def make_readable_by_others(root: Path) -> None:
    """chmod o+r on every file and o+rx on every folder under ``root`` (the container runs as uid 1000)."""
    root = Path(root)
    paths = [root, *root.rglob("*")]
    for path in paths:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        wanted = mode | stat.S_IROTH | stat.S_IRGRP
        if path.is_dir() or mode & stat.S_IXUSR:
            wanted |= stat.S_IXOTH | stat.S_IXGRP
        if wanted != mode:
            path.chmod(stat.S_IMODE(wanted))


@contextlib.contextmanager
def prepared_model_folder(contract, workdir: Path | str | None = None, built: Path | None = None) -> Iterator[Path]:
    """The folder MLServer should load for ``contract``, readable by the container's user.

    A dismcli build folder (``contract.built``), or ``built`` (the build the gate's run already
    made), is copied (it is what will be zipped: its files and modes are never changed).
    Otherwise the template is built offline (``dialsgate.build.build``). Either way into a fresh
    0755 temporary folder (under ``workdir`` when given), removed afterwards.
    """
    temporary = Path(tempfile.mkdtemp(prefix="dialsgate-serve-", dir=str(workdir) if workdir else None))
    try:
        temporary.chmod(0o755)
        if contract.built or built is not None:
            # The user's build folder is what dismcli package will zip: never touch it; serve a copy.
            source = Path(built if built is not None else contract.code_dir)
            if plain_kind(source / "model-settings.json") is not None:
                raise ServingError(f"{source} is not a dismcli build folder: it has no model-settings.json")
            folder = temporary / contract.resource_key
            copy_plain(source, folder)  # plain files only: no link is served, nor what it points at
        else:
            build_root = temporary / "build"
            build(contract.template_path, build_root=build_root)
            folder = build_root / contract.resource_key
        make_readable_by_others(temporary)
        yield folder
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_status(url: str, timeout: float = 5.0) -> int | None:
    """Status code of a GET, or None when nothing answers (or something that is not HTTP)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, http.client.HTTPException):
        return None


def wait_until_model_ready(
    url: str,
    model_name: str,
    timeout: float | None = None,
    still_running: Callable[[], str | None] | None = None,
    wait_first: Callable[[str, float], bool] | None = None,
) -> float:
    """Poll ``/v2/models/<name>/ready`` until it answers 200; returns the seconds waited.
    ``wait_first(path, seconds)``: a cheaper wait to try before polling (the relay's, inside the
    container); the polling then confirms, or finds why not.

    ``/v2/health/ready`` may answer 200 while the model failed to load, hence the model's own
    endpoint (MLServer answers 400 until the model is loaded). ``still_running()`` returns a
    reason string when the server is gone (e.g. the container exited) so the wait ends early.
    Raises ModelNotReady on the deadline.
    """
    timeout = ready_timeout() if timeout is None else timeout
    ready_path = f"/v2/models/{model_name}/ready"
    ready_url = f"{url.rstrip('/')}{ready_path}"
    start = time.monotonic()
    if wait_first is not None:
        wait_first(ready_path, timeout)
    deadline = start + timeout
    delay = 0.05
    last = None
    while True:
        last = http_status(ready_url, timeout=min(5.0, max(0.5, deadline - time.monotonic())))
        if last == 200:
            return time.monotonic() - start
        if still_running is not None:
            gone = still_running()
            if gone:
                raise ModelNotReady(f"{gone} before model {model_name!r} was ready (last {ready_url} answer: {last})")
        if time.monotonic() >= deadline:
            raise ModelNotReady(
                f"model {model_name!r} not ready after {timeout:.0f} s: GET {ready_url} last answered "
                f"{last if last is not None else 'nothing (no connection)'} (set {READY_TIMEOUT_ENV} to wait longer)"
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 1.0)


def configure_testcontainers() -> None:
    """testcontainers' settings for serving a model here, unless the environment sets them.

    Machines that carry /.dockerenv make testcontainers believe it runs inside a container and
    look for a gateway address: talk to the engine on this host (127.0.0.1, docker_host mode).
    Its Ryuk reaper image may not be pullable: serve_model_folder removes its containers itself.
    Set in testcontainers' configuration object, never in os.environ.
    """
    # Late: testcontainers reads its settings when imported (configured here first), and only
    # the server layer's environment has it.
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    if "TC_HOST" not in os.environ and "TESTCONTAINERS_HOST_OVERRIDE" not in os.environ:
        testcontainers_config.tc_host_override = "127.0.0.1"
    if "TESTCONTAINERS_CONNECTION_MODE" not in os.environ:
        testcontainers_config.connection_mode_override = ConnectionMode.docker_host
    if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ:
        testcontainers_config.ryuk_disabled = True


def model_ready_wait_strategy(
    url: str,
    model_name: str,
    timeout: float,
    name: str,
    engine: Engine,
    relay: ExecRelay | None = None,
    on_start: Callable[[], None] | None = None,
):
    """A testcontainers wait strategy: the *model* answers ready (not only the server).

    It notices a container that exited (no point waiting out the deadline) and its error
    carries the container's last log lines. ``on_start``: called first, once the container exists.
    """
    from testcontainers.core.waiting_utils import WaitStrategy  # Late: see configure_testcontainers

    class ModelReady(WaitStrategy):
        def wait_until_ready(self, container) -> None:
            if on_start is not None:
                on_start()
            try:
                wait_until_model_ready(
                    url, model_name, timeout=self._startup_timeout, still_running=lambda: _container_gone(name, engine),
                    wait_first=relay.wait_until_ok if relay is not None else None,
                )  # fmt: skip
            except ModelNotReady as error:
                logs = _logs_of(name, engine, LOG_TAIL_LINES)
                cause = last_exception_line(logs)
                message = f"{cause} (the container's log); {error}" if cause else str(error)
                raise ModelNotReady(_with_logs(message, logs)) from None

    return ModelReady().with_startup_timeout(timeout)


def _logs_of(name: str, engine: Engine, tail: int | None = None, since: str | None = None) -> str:
    try:
        return engine.logs(name, tail, since=since)
    except Exception as error:  # the container may already be gone
        return f"(container logs unavailable: {type(error).__name__}: {error})"


@dataclass
class Served:
    """A model served from a container (or an external server when ``container`` is None)."""

    url: str
    http_port: int
    grpc_port: int | None
    model_name: str
    ready_seconds: float
    network_mode: str
    container: object | None = field(default=None, repr=False)  # testcontainers' DockerContainer
    name: str | None = None  # the container's name, for the engine
    engine: Engine | None = field(default=None, repr=False)

    def logs(self, tail: int | None = None, since: str | None = None) -> str:
        """The container's stdout and stderr, interleaved (MLServer logs mostly to stderr); only
        what it wrote at or after ``since`` (an RFC 3339 time) when given."""
        return "" if self.name is None or self.engine is None else _logs_of(self.name, self.engine, tail, since)


def _container_gone(name: str, engine: Engine) -> str | None:
    try:
        found = engine.container_inspect(name)
    except Exception as error:
        return f"the container could not be inspected ({type(error).__name__}: {error})"
    if found is None:
        return "the container disappeared"
    state = found.get("State") or {}
    status = str(state.get("Status", "")).lower()
    if status in ("created", "configured", "initialized", "running"):
        return None
    return f"the container stopped (status {status}, exit code {state.get('ExitCode')})"


#: A traceback's exception line: unindented, a (dotted) name ending in Error, Exception or Exit.
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit)(?::.*)?$")


#: An exception's module path (``mlserver.parallel.errors.WorkerError``: the class is enough).
MODULE_PATH = re.compile(r"\b(?:[a-z_][a-z0-9_]*\.)+([A-Z]\w*(?:Error|Exception|Exit)\b)")


def last_exception_line(logs: str) -> str | None:
    """The last exception line of a container's log (MLServer prints the traceback of what
    stopped the model's load), its exceptions' module paths left out; or None. The line is the
    folder's text: cut to 500 characters before ``MODULE_PATH`` searches it (a search of a long
    line of dotted names takes time growing with its square: a 64 KiB line took 14 s)."""
    found = [line.rstrip() for line in logs.splitlines() if EXCEPTION_LINE.match(line.rstrip())]
    return MODULE_PATH.sub(r"\1", found[-1][:500]) if found else None


def _with_logs(message: str, logs: str) -> str:
    return f"{message}\n---- container log (last {LOG_TAIL_LINES} lines) ----\n{logs.rstrip()}\n---- end of container log ----"


@contextlib.contextmanager
def serve_model_folder(folder: Path | str, contract, image: str | None = None, timeout: float | None = None) -> Iterator[Served]:
    """Run ``folder`` in the contract's image exactly as ``dismcli start-api`` does; yield :class:`Served`.

    Waits (backoff, deadline :func:`ready_timeout`) for the model's readiness; on failure raises
    ModelNotReady with the container's last log lines. The container is always removed.
    """
    from testcontainers.core.container import DockerContainer  # Late: see configure_testcontainers

    folder = Path(folder).resolve()
    if not (folder / "model-settings.json").is_file():
        raise ServingError(f"{folder} has no model-settings.json: not a folder MLServer can start (build it first)")
    image = image or contract.image
    if not image:
        raise ServingError(f"the template {contract.template_path} names no Image for {contract.resource_key}")
    engine = Engine.from_settings()
    mode = resolve_network_mode(engine)
    mount_point = f"/mnt/{contract.name}"
    if not engine.image_exists(image):
        raise ServingError(f"image {image} is not present locally; call ensure_image first (or {engine.name} pull {image})")
    identity, user, _ = image_facts(image, engine)
    who = image_user(identity, user)
    memory, cpus, _ = limits_for(contract)
    writable = writable_places(who, engine.is_podman)

    configure_testcontainers()
    name = f"{SERVED_NAME_PREFIX}{contract.name}-{secrets.token_hex(4)}"
    # The engine settings of the worker container (container.sandbox), in the Docker API's terms.
    confined = {
        "user": user,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": int(cpus * 1e9),
        "pids_limit": PIDS_LIMIT,
        "read_only": True,
        # The image's own working directory is the home in the real image (/opt/mlserver, a
        # tmpfs here); in the stand-in it is not, so a handler writing beside its working
        # directory (writable in DIALS) would fail only here: work in the home, as the real image does.
        "working_dir": who.home,
    }
    if mode in ("host", "none"):
        confined["network_mode"] = mode
    if not hasattr(DockerContainer, "with_tmpfs_mount"):
        confined["tmpfs"] = writable  # an older testcontainers passes it on as a keyword
    container = (
        DockerContainer(image, **confined)
        .with_envs(PYTHONDONTWRITEBYTECODE="1", HOME=who.home, **SERVER_WRITES)
        .with_volume_mapping(str(folder), mount_point, "ro")
        .with_command(["mlserver", "start", mount_point])
        # Named for what it serves, so `<engine> ps` (and a test watching engine events) can tell.
        .with_name(name)
    )
    relay = None
    if mode == "none":
        # Listening before the container exists: a connection before MLServer listens is closed
        # at once, which the readiness wait takes as "not yet".
        relay = ExecRelay(engine, name, CONTAINER_HTTP_PORT)
        http_port, grpc_port = relay.port, None
    elif mode == "host":
        http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
        container.with_envs(
            MLSERVER_HOST="127.0.0.1",
            MLSERVER_HTTP_PORT=str(http_port),
            MLSERVER_GRPC_PORT=str(grpc_port),
            MLSERVER_METRICS_PORT=str(metrics_port),
        )
    else:
        # Published on the loopback interface only; MLServer listens on its defaults inside.
        http_port, grpc_port = free_port(), free_port()
        container.with_bind_ports(CONTAINER_HTTP_PORT, ("127.0.0.1", http_port))
        container.with_bind_ports(CONTAINER_GRPC_PORT, ("127.0.0.1", grpc_port))
    if hasattr(container, "with_tmpfs_mount"):
        for path, options in writable.items():
            container.with_tmpfs_mount(path, options)  # the engine takes the options as given
    url = f"http://127.0.0.1:{http_port}"
    lifeline = Lifeline(engine, name)
    container.waiting_for(
        model_ready_wait_strategy(
            url, contract.name, ready_timeout() if timeout is None else timeout, name, engine, relay, lifeline.start
        )
    )

    # testcontainers' own errors are the docker SDK's.
    import docker.errors  # Late: the docker package is in the server layer's environment only

    def abandon() -> None:
        if relay is not None:
            relay.close()
        with contextlib.suppress(Exception):
            container.stop()
        lifeline.close()

    started = time.monotonic()
    try:
        container.start()  # returns once the wait strategy saw the model ready
    except docker.errors.DockerException as error:
        abandon()
        hint = f" (set {NETWORK_ENV}=host when the engine has no bridge network)" if mode == "bridge" else ""
        raise ServingError(f"could not start {image} for {mount_point} ({mode} network){hint}: {error}") from None
    except ModelNotReady as error:
        abandon()
        # The path the container sees: the host copy lives in a temporary folder of the gate, no
        # business of the folder's author.
        # The cause first (a reason's first line is what the verdict shows), then where.
        cause, _, log = str(error).partition("\n")
        raise ModelNotReady(
            f"{cause} (serving {mount_point} in {image}, {mode} network, {url})" + (f"\n{log}" if log else "")
        ) from None
    except BaseException:
        abandon()  # whatever else stopped the start (an error of ours, an interrupt): no container is left
        raise
    try:
        served = Served(
            url=url,
            http_port=http_port,
            grpc_port=grpc_port,
            model_name=contract.name,
            ready_seconds=float("nan"),
            network_mode=mode,
            container=container,
            name=name,
            engine=engine,
        )
        served.ready_seconds = time.monotonic() - started
        yield served
    finally:
        if relay is not None:
            relay.close()
        try:
            container.stop()  # removes the container (force, with its anonymous volumes)
        finally:
            lifeline.close()


@contextlib.contextmanager
def serve_contract(contract, log: Callable[[str], None] = print, requirements: tuple[str, ...] = ()) -> Iterator[Served]:
    """ensure_image + prepared_model_folder + serve_model_folder in one step."""
    image = ensure_image(contract.image, log=log, requirements=requirements)
    with prepared_model_folder(contract) as folder, serve_model_folder(folder, contract, image=image) as served:
        yield served
