"""Serve a DIALS model folder in its serving image, the way ``dismcli start-api`` does.

``dismcli start-api -r <ResourceKey>`` runs the template's ``Image`` with the command
``mlserver start /mnt/<Name>``, the build folder bind-mounted read-only at ``/mnt/<Name>`` and
``PYTHONDONTWRITEBYTECODE=1``. :func:`serve_model_folder` does the same through testcontainers,
waits until the *model* (not only the server) is ready, and always removes the container.

Settings (environment):

``DIALSGATE_DOCKER_NETWORK``
    ``host``: host networking, MLServer bound to 127.0.0.1 on free ports (the only choice on
    machines whose engine runs with ``--bridge=none``). ``bridge``: Docker's default bridge,
    container port 8080 (and 8081 for gRPC) published on free ports of 127.0.0.1.
    ``auto`` (default): ``host`` when the engine has no network named ``bridge``, else ``bridge``.
``DIALSGATE_READY_TIMEOUT``
    seconds to wait for the model to become ready (default 120).

Used by the server layer (``dialsgate/layers/test_server_*.py``), the pre-deploy gate and ``benchmarks``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

NETWORK_ENV = "DIALSGATE_DOCKER_NETWORK"
READY_TIMEOUT_ENV = "DIALSGATE_READY_TIMEOUT"
DEFAULT_READY_TIMEOUT = 120.0
NETWORK_MODES = ("host", "bridge", "auto")
#: MLServer's ports inside the container when it is not on the host's network.
CONTAINER_HTTP_PORT = 8080
CONTAINER_GRPC_PORT = 8081
#: Builds the core of a stand-in image (shipped with dialsgate).
STANDIN_SCRIPT = Path(__file__).resolve().parent / "build-standin-image.sh"
LOG_TAIL_LINES = 200
#: Containers that serve a model folder are named <prefix><model Name>-<random>.
SERVED_NAME_PREFIX = "dialsgate-serve-"


class ServingError(RuntimeError):
    """The model folder could not be served (no engine, no image, model never ready...)."""


class DockerUnavailable(ServingError):
    """No Docker engine answers."""


class ModelNotReady(ServingError):
    """The container ran but the model did not become ready; the message carries its log."""


# --------------------------------------------------------------------------- settings


def network_setting() -> str:
    value = os.environ.get(NETWORK_ENV, "auto").strip().lower() or "auto"
    if value not in NETWORK_MODES:
        raise ServingError(f"{NETWORK_ENV}={value!r}: expected one of {', '.join(NETWORK_MODES)}")
    return value


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


# --------------------------------------------------------------------------- Docker engine


def docker_client():
    """A docker SDK client that has answered a ping, or DockerUnavailable with what to do."""
    import docker

    where = os.environ.get("DOCKER_HOST", "the default Docker socket")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:  # DockerException, connection errors, permission errors
        raise DockerUnavailable(
            f"no Docker engine answers at {where} ({type(error).__name__}: {error}). "
            "Start one (as root on CI machines: .ci/docker-engine.sh start), set DOCKER_HOST, "
            "or run the server layer against a running server with --server-url URL."
        ) from None
    return client


def resolve_network_mode(client=None) -> str:
    """``host`` or ``bridge`` (``auto`` decided by whether the engine has a ``bridge`` network)."""
    mode = network_setting()
    if mode == "host":
        return mode
    client = client or docker_client()
    has_bridge = any(network.name == "bridge" for network in client.networks.list(names=["bridge"]))
    if mode == "bridge" and not has_bridge:
        raise ServingError(
            f"{NETWORK_ENV}=bridge but the Docker engine has no network named 'bridge' (started with --bridge=none?); "
            f"use {NETWORK_ENV}=host or auto"
        )
    return "bridge" if has_bridge else "host"


def image_exists(image: str, client=None) -> bool:
    import docker.errors

    client = client or docker_client()
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


STANDIN_LABEL = "org.dialsgate.standin"
PACKAGE_SET_LABEL = "org.dialsgate.package-set"


def is_standin(image: str, client=None) -> bool:
    """True when ``image`` is one of our stand-ins (labelled), False for a real or foreign image."""
    client = client or docker_client()
    labels = client.images.get(image).labels or {}
    return STANDIN_LABEL in labels


def package_set_hash(profile, requirements) -> str:
    import hashlib

    text = "\n".join([profile.name, profile.core_file.read_text(), *sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run_logged(command: list[str], log: Callable[[str], None], what: str, cwd: str | None = None) -> None:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    tail: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        log(line)
        tail = (tail + [line])[-30:]
    if process.wait() != 0:
        raise ServingError(f"{what} failed (exit {process.returncode}); its last lines:\n" + "\n".join(tail))


def _try_pull(image: str, log: Callable[[str], None], timeout: int = 30) -> bool:
    log(f"image {image} is not present: trying docker pull (timeout {timeout} s)")
    run = subprocess.run(
        ["timeout", "--kill-after=5", str(timeout), "docker", "pull", "-q", image], capture_output=True, text=True
    )
    if run.returncode == 0:
        log(f"pulled {image}")
        return True
    log(f"pull failed: {(run.stderr.strip().splitlines() or ['timed out'])[-1][:200]}")
    return False


def _extras_image(base: str, profile, requirements: list[str], client, log: Callable[[str], None]) -> str:
    """``base`` plus the image packages a folder needs beyond the core; built once per set.

    Wheels are fetched on the host (same Python minor as the stand-in), then installed with no
    network inside a container of ``base``, which is committed under a tag naming the set.
    """
    digest = package_set_hash(profile, requirements)
    tag = f"dialsgate-standin:{profile.name}-{digest}"
    if image_exists(tag, client):
        return tag
    log(f"building {tag}: {base} + {', '.join(requirements)}")
    from .serving_env import cache_dir

    wheelhouse = cache_dir() / "wheelhouse" / digest
    wheelhouse.mkdir(parents=True, exist_ok=True)
    python = client.containers.run(
        base, ["python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], remove=True, network_mode="none"
    )
    python = python.decode().strip()
    from .serving_env import find_python

    host_python = find_python(tuple(int(part) for part in python.split(".")))
    _run_logged(
        [
            host_python,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary",
            ":all:",
            "-d",
            str(wheelhouse),
            *requirements,
            "-c",
            str(profile.packages_file),
        ],
        log,
        "downloading the extra wheels",
    )
    wheelhouse.chmod(0o755)
    for wheel in wheelhouse.iterdir():
        wheel.chmod(0o644)
    import docker.types

    shutil.copyfile(profile.packages_file, wheelhouse / "constraints.txt")
    (wheelhouse / "constraints.txt").chmod(0o644)
    container = client.containers.run(
        base,
        ["python", "-m", "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
         "--find-links", "/wheels", *requirements, "-c", "/wheels/constraints.txt"],
        user="0",
        network_mode="none",
        # A mount, not `volumes=`: the SDK would also declare a volume in the image config, and
        # the committed image would then carry it.
        mounts=[docker.types.Mount("/wheels", str(wheelhouse), type="bind", read_only=True)],
        detach=True,
    )  # fmt: skip
    try:
        result = container.wait()
        if result.get("StatusCode") != 0:
            raise ServingError(
                f"installing {requirements} into {base} failed:\n{container.logs().decode(errors='replace')[-3000:]}"
            )
        base_config = client.images.get(base).attrs["Config"]
        changes = [
            f"USER {base_config.get('User') or '1000'}",
            f"CMD {json.dumps(base_config.get('Cmd') or ['mlserver', 'start', '/mnt/models'])}",
            f"LABEL {PACKAGE_SET_LABEL}={digest}",
        ]
        container.commit(repository=tag.split(":")[0], tag=tag.split(":")[1], changes=changes)
    finally:
        container.remove(force=True)
    log(f"built {tag}")
    return tag


def ensure_image(
    image: str,
    log: Callable[[str], None] = print,
    profile=None,
    requirements: list[str] | tuple[str, ...] = (),
) -> str:
    """Make ``image`` available locally with the packages the folder needs; returns the image to run.

    Order: a real (non stand-in) image of that name, present or pullable, is used as is (it has
    every package of the image). Otherwise the stand-in is used: its core built from Debian and
    PyPI by ``build-standin-image.sh`` (beside this module) (once per profile), plus the folder's extra image
    packages (``requirements``, once per set); the template's image name is then pointed at it.
    """
    from .profiles import profile_for_image

    client = docker_client()
    profile = profile or profile_for_image(image)
    if image_exists(image, client) and not is_standin(image, client):
        return image
    if not image_exists(image, client) and os.environ.get("DIALSGATE_NO_PULL") != "1" and _try_pull(image, log):
        return image
    base = f"dialsgate-standin:{profile.name}-core"
    _run_logged(
        ["bash", str(STANDIN_SCRIPT), "--image", base, "--profile", str(profile.folder), "--no-pull"], log, f"{STANDIN_SCRIPT}"
    )
    target = _extras_image(base, profile, list(requirements), client, log) if requirements else base
    # The template's name points at it too (for `dismcli start-api` by hand); the gate itself runs
    # `target`, so two gates with different package sets never race on that one name.
    client.images.get(target).tag(image)
    log(f"{image} -> {target}")
    return target


def image_build_or_check(image: str, log: Callable[[str], None] = print) -> tuple[str, float]:
    """Run the stand-in build script even when the image exists (it says "up to date" quickly).

    Returns (last line of its output, seconds). Falls back to :func:`ensure_image` when the
    repository has no such script.
    """
    script = STANDIN_SCRIPT
    start = time.perf_counter()
    if not script.is_file():
        return ensure_image(image, log), time.perf_counter() - start
    docker_client()
    result = subprocess.run(
        ["bash", str(script), "--image", image], cwd=str(script.parent.parent), capture_output=True, text=True
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    for line in lines:
        log(line)
    if result.returncode != 0:
        raise ServingError(f"{script} --image {image} failed (exit {result.returncode}):\n" + "\n".join(lines[-30:]))
    return (lines[-1] if lines else "done"), time.perf_counter() - start


# --------------------------------------------------------------------------- model folder


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
def prepared_model_folder(contract, workdir: Path | str | None = None) -> Iterator[Path]:
    """The folder MLServer should load for ``contract``, readable by the container's user.

    A dismcli build folder (``contract.built``) is copied (it is what will be zipped: its files
    and modes are never changed). Otherwise the template is built offline
    (``dialsgate.build.build``). Either way into a fresh 0755 temporary folder (under
    ``workdir`` when given), removed afterwards.
    """
    temporary = Path(tempfile.mkdtemp(prefix="dialsgate-serve-", dir=str(workdir) if workdir else None))
    try:
        temporary.chmod(0o755)
        if contract.built:
            # The user's build folder is what dismcli package will zip: never touch it; serve a copy.
            source = Path(contract.code_dir)
            if not (source / "model-settings.json").is_file():
                raise ServingError(f"{source} is not a dismcli build folder: it has no model-settings.json")
            folder = temporary / contract.resource_key
            shutil.copytree(source, folder, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            from .build import build

            build_root = temporary / "build"
            build(contract.template_path, build_root=build_root)
            folder = build_root / contract.resource_key
        make_readable_by_others(temporary)
        yield folder
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


# --------------------------------------------------------------------------- readiness


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_status(url: str, timeout: float = 5.0) -> int | None:
    """Status code of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def wait_until_model_ready(
    url: str,
    model_name: str,
    timeout: float | None = None,
    still_running: Callable[[], str | None] | None = None,
) -> float:
    """Poll ``/v2/models/<name>/ready`` until it answers 200; returns the seconds waited.

    ``/v2/health/ready`` may answer 200 while the model failed to load, hence the model's own
    endpoint (MLServer answers 400 until the model is loaded). ``still_running()`` returns a
    reason string when the server is gone (e.g. the container exited) so the wait ends early.
    Raises ModelNotReady on the deadline.
    """
    timeout = ready_timeout() if timeout is None else timeout
    ready_url = f"{url.rstrip('/')}/v2/models/{model_name}/ready"
    start = time.monotonic()
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
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    if "TC_HOST" not in os.environ and "TESTCONTAINERS_HOST_OVERRIDE" not in os.environ:
        testcontainers_config.tc_host_override = "127.0.0.1"
    if "TESTCONTAINERS_CONNECTION_MODE" not in os.environ:
        testcontainers_config.connection_mode_override = ConnectionMode.docker_host
    if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ:
        testcontainers_config.ryuk_disabled = True


def model_ready_wait_strategy(url: str, model_name: str, timeout: float):
    """A testcontainers wait strategy: the *model* answers ready (not only the server).

    It notices a container that exited (no point waiting out the deadline) and its error
    carries the container's last log lines.
    """
    from testcontainers.core.waiting_utils import WaitStrategy

    class ModelReady(WaitStrategy):
        def wait_until_ready(self, container) -> None:
            try:
                wait_until_model_ready(
                    url, model_name, timeout=self._startup_timeout, still_running=lambda: _container_gone(container)
                )
            except ModelNotReady as error:
                raise ModelNotReady(_with_logs(str(error), _logs_of(container, LOG_TAIL_LINES))) from None

    return ModelReady().with_startup_timeout(timeout)


def _logs_of(container, tail: int | None = None) -> str:
    try:
        raw = container.get_wrapped_container().logs(stdout=True, stderr=True, tail=tail if tail is not None else "all")
    except Exception as error:  # the container may already be gone
        return f"(container logs unavailable: {type(error).__name__}: {error})"
    return raw.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- serving


@dataclass
class Served:
    """A model served from a container (or an external server when ``container`` is None)."""

    url: str
    http_port: int
    grpc_port: int | None
    model_name: str
    ready_seconds: float
    network_mode: str
    container: object | None = field(default=None, repr=False)

    def logs(self, tail: int | None = None) -> str:
        """The container's stdout and stderr, interleaved (MLServer logs mostly to stderr)."""
        return "" if self.container is None else _logs_of(self.container, tail)


def _container_gone(container) -> str | None:
    wrapped = container.get_wrapped_container()
    try:
        wrapped.reload()
    except Exception as error:
        return f"the container disappeared ({type(error).__name__}: {error})"
    status = wrapped.status
    if status in ("created", "running"):
        return None
    exit_code = wrapped.attrs.get("State", {}).get("ExitCode")
    return f"the container stopped (status {status}, exit code {exit_code})"


def _with_logs(message: str, logs: str) -> str:
    return f"{message}\n---- container log (last {LOG_TAIL_LINES} lines) ----\n{logs.rstrip()}\n---- end of container log ----"


@contextlib.contextmanager
def serve_model_folder(folder: Path | str, contract, image: str | None = None, timeout: float | None = None) -> Iterator[Served]:
    """Run ``folder`` in the contract's image exactly as ``dismcli start-api`` does; yield :class:`Served`.

    Waits (backoff, deadline :func:`ready_timeout`) for the model's readiness; on failure raises
    ModelNotReady with the container's last log lines. The container is always removed.
    """
    from testcontainers.core.container import DockerContainer

    folder = Path(folder).resolve()
    if not (folder / "model-settings.json").is_file():
        raise ServingError(f"{folder} has no model-settings.json: not a folder MLServer can start (build it first)")
    image = image or contract.image
    if not image:
        raise ServingError(f"the template {contract.template_path} names no Image for {contract.resource_key}")
    client = docker_client()
    if not image_exists(image, client):
        raise ServingError(f"image {image} is not present locally; call ensure_image first (or docker pull {image})")
    mode = resolve_network_mode(client)
    mount_point = f"/mnt/{contract.name}"

    configure_testcontainers()
    container = (
        DockerContainer(image, **({"network_mode": "host"} if mode == "host" else {}))
        .with_envs(PYTHONDONTWRITEBYTECODE="1")
        .with_volume_mapping(str(folder), mount_point, "ro")
        .with_command(["mlserver", "start", mount_point])
        # Named for what it serves, so `docker ps` (and a test watching engine events) can tell.
        .with_name(f"{SERVED_NAME_PREFIX}{contract.name}-{secrets.token_hex(4)}")
    )
    if mode == "host":
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
    url = f"http://127.0.0.1:{http_port}"
    container.waiting_for(model_ready_wait_strategy(url, contract.name, ready_timeout() if timeout is None else timeout))

    import docker.errors

    started = time.monotonic()
    try:
        container.start()  # returns once the wait strategy saw the model ready
    except docker.errors.DockerException as error:
        with contextlib.suppress(Exception):
            container.stop()
        hint = f" (set {NETWORK_ENV}=host when the engine has no bridge network)" if mode == "bridge" else ""
        raise ServingError(f"could not start {image} for {folder} ({mode} network){hint}: {error}") from None
    except ModelNotReady as error:
        with contextlib.suppress(Exception):
            container.stop()
        raise ModelNotReady(f"serving {folder} in {image} ({mode} network, {url}): {error}") from None
    try:
        served = Served(
            url=url,
            http_port=http_port,
            grpc_port=grpc_port,
            model_name=contract.name,
            ready_seconds=float("nan"),
            network_mode=mode,
            container=container,
        )
        served.ready_seconds = time.monotonic() - started
        yield served
    finally:
        container.stop()  # removes the container (force, with its anonymous volumes)


# --------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class PeakMemory:
    """The most memory the container's cgroup has used since it started."""

    bytes: int
    source: str  # where the figure was read

    @property
    def mib(self) -> float:
        return self.bytes / 2**20


#: cgroup files holding the peak, seen from inside the container (v2 first; kernel >= 5.19 for v2).
CGROUP_PEAK_FILES = ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes")


def _docker_container(container):
    """The docker SDK container behind a testcontainers DockerContainer (or the SDK object itself)."""
    getter = getattr(container, "get_wrapped_container", None)
    return getter() if getter is not None else container


def container_peak_memory(container) -> PeakMemory:
    """Peak memory of a running container, from its cgroup.

    1. ``docker stats`` ``memory_stats.max_usage``: cgroup v1 engines report it (v2 engines do not);
    2. ``cat /sys/fs/cgroup/memory.peak`` inside the container: cgroup v2 (kernel >= 5.19);
    3. ``cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes`` inside it: cgroup v1 without stats.

    The cgroup counts everything the container's processes use, page cache included (as the
    kernel's OOM killer and a Kubernetes memory limit do). Raises ServingError naming what was tried.
    """
    wrapped = _docker_container(container)
    tried = []
    try:
        stats = wrapped.stats(stream=False, one_shot=True)
    except TypeError:  # docker SDK without one_shot
        stats = wrapped.stats(stream=False)
    except Exception as error:
        stats = {}
        tried.append(f"docker stats: {type(error).__name__}: {error}")
    max_usage = (stats.get("memory_stats") or {}).get("max_usage")
    if isinstance(max_usage, int) and max_usage > 0:
        return PeakMemory(max_usage, "docker stats memory_stats.max_usage (cgroup v1)")
    tried.append("docker stats: no memory_stats.max_usage (a cgroup v2 engine)")
    for path in CGROUP_PEAK_FILES:
        try:
            result = wrapped.exec_run(["cat", path], stdout=True, stderr=True)
        except Exception as error:
            tried.append(f"cat {path}: {type(error).__name__}: {error}")
            continue
        text = result.output.decode(errors="replace").strip() if result.output else ""
        if result.exit_code == 0 and text.isdigit():
            return PeakMemory(int(text), f"{path} in the container")
        tried.append(f"cat {path}: exit {result.exit_code} {text[:120]!r}")
    raise ServingError("cannot read the container's peak memory; tried: " + "; ".join(tried))


@contextlib.contextmanager
def serve_contract(contract, log: Callable[[str], None] = print, requirements: tuple[str, ...] = ()) -> Iterator[Served]:
    """ensure_image + prepared_model_folder + serve_model_folder in one step."""
    image = ensure_image(contract.image, log=log, requirements=requirements)
    with prepared_model_folder(contract) as folder, serve_model_folder(folder, contract, image=image) as served:
        yield served
