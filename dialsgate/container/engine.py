"""The container engine: one class, :class:`Engine`, over its command line client (Docker or Podman).

Every container operation of the gate goes through it: the worker container, the served
container's relay, the stand-in image, the sandbox's image facts, the report's and the
verdict's image facts, and the tests. Every call has a timeout; a failure names the command and
the last lines of what the engine said. What differs on Podman is known here only
(:attr:`Engine.is_podman`, :meth:`Engine.tmpfs_owner`, :meth:`Engine.events`,
:meth:`Engine.ignores_limits`).

Settings (environment): ``DIALSGATE_ENGINE`` (``docker`` or ``podman``, the command line client;
default: ``docker`` when on PATH, else ``podman``) and ``DOCKER_HOST`` (read by the client, and by
testcontainers, which starts the served MLServer through the engine's API: ``container.serve``).

``DIALSGATE_DOCKER_NETWORK``, the served container's network: ``none`` (default; ``auto`` is the
same): no network at all, requests carried into its namespace by ``<engine> exec``
(``container.relay``), so the served model code has no route off the machine on any engine;
``host`` (host networking, MLServer on 127.0.0.1 and free ports); ``bridge`` (the default bridge,
the container's ports published on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import cache, cached_property

from dialsgate.spawning import child_environment

NETWORK_ENV = "DIALSGATE_DOCKER_NETWORK"


NETWORK_MODES = ("none", "host", "bridge", "auto")


#: The engine's command line client: docker or podman (default: docker when on PATH, else podman).
ENGINE_ENV = "DIALSGATE_ENGINE"
HOST_ENV = "DOCKER_HOST"
#: Seconds an engine command may take unless its caller says otherwise.
DEFAULT_TIMEOUT = 60.0
#: Seconds a live watch of the engine's events waits at its end for the last of them.
WATCH_SETTLE = 0.5
#: Seconds between the questions "do you answer?" before an engine is taken as absent.
ANSWER_PAUSES = (0.5, 1.0)
#: Characters of the engine's error output kept in an error message.
ERROR_TAIL = 400
#: What the engine says when a container or image is not there (Docker, then Podman).
MISSING = re.compile(r"no such (image|container|object)|image not known|not found|does not exist", re.IGNORECASE)


class ServingError(RuntimeError):
    """The model folder could not be served (no engine, no image, model never ready...)."""


class DockerUnavailable(ServingError):
    """No container engine answers (Docker or Podman)."""


class EngineError(ServingError):
    """An engine command failed: the message names it, its exit status and the end of its error output."""


def tail(text: str | bytes | None, limit: int = ERROR_TAIL) -> str:
    """The end of an engine's output, on one line's worth: what a message quotes."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    text = (text or "").strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def tmpfs_owner_options(uid: int, gid: int, podman: bool) -> str:
    """The tmpfs options that give a mount to the container's user.

    Docker takes ``uid=``/``gid=`` (its runtime gives the mount the mode of the image's
    directory); Podman refuses them and takes ``U`` (the container's user) and ``notmpcopyup``
    (the image's directory is not copied into it).
    """
    return "U,notmpcopyup" if podman else f"uid={uid},gid={gid}"


def parse_repository_tag(image: str) -> tuple[str, str | None]:
    """``registry:5000/a/b:1.5.0`` -> (``registry:5000/a/b``, ``1.5.0``); a digest stays in the repository."""
    if "@" in image:
        return image, None
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:  # no tag, only a registry port
        return image, None
    return repository, tag


class Engine:
    """The engine's command line client (``client``, an absolute path) and where it talks (``host``)."""

    def __init__(self, client: str, host: str | None = None):
        self.client = client
        self.host = host
        #: Why the engine is taken as hung: it did not answer "do you answer?" within its time.
        #: Every later command of this process fails at once with it (an engine that accepts
        #: connections and never answers cost every later question its whole timeout: 7 minutes
        #: for a plain folder's verdict).
        self.silent: str | None = None

    def __repr__(self) -> str:
        return f"Engine({self.client!r}, host={self.host!r})"

    @classmethod
    def from_settings(cls) -> Engine:
        """The engine the settings name (``DIALSGATE_ENGINE``, ``DOCKER_HOST``); DockerUnavailable
        when no client is installed. One object per settings and process."""
        return _engine_for(os.environ.get(ENGINE_ENV, "").strip(), os.environ.get(HOST_ENV) or None, os.environ.get("PATH", ""))

    # ------------------------------------------------------------------ running the client

    @property
    def name(self) -> str:
        """``docker`` or ``podman`` (the client's file name)."""
        return os.path.basename(self.client)

    def argv(self, *args: str) -> list[str]:
        """The command line of one engine command, for a caller that streams it (``Popen``)."""
        return [self.client, *args]

    def call(
        self, *args: str, timeout: float = DEFAULT_TIMEOUT, stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run one engine command to its end (bytes in, bytes out); EngineError when it fails
        (``check``), takes longer than ``timeout`` seconds or cannot be started."""
        what = f"{self.name} {' '.join(args[:2])}"
        if self.silent is not None:
            raise EngineError(f"{what} not run: {self.silent}")
        try:
            run = subprocess.run(self.argv(*args), input=stdin, capture_output=True, timeout=timeout, env=child_environment())
        except subprocess.TimeoutExpired:
            raise EngineError(f"{what} did not finish within {timeout:g} s ({self.where()})") from None
        except OSError as error:
            raise DockerUnavailable(f"{what} could not be run: {error}") from None
        if check and run.returncode != 0:
            raise EngineError(f"{what} failed (exit {run.returncode}): {tail(run.stderr or run.stdout)}")
        return run

    def where(self) -> str:
        return f"{self.name} at {self.host or 'the default socket'}"

    def output_capped(self, argv: list[str], cap: int, timeout: float) -> bytes | None:
        """The standard output of an engine command line (``argv``, ``exec_argv``), or None when it fails, says more than ``cap``
        bytes or takes longer than ``timeout`` seconds (then it is killed)."""
        if self.silent is not None:
            return None
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_environment()
        )
        deadline, chunks, size = time.monotonic() + timeout, [], 0
        try:
            while True:
                ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    return None
                chunk = os.read(process.stdout.fileno(), 1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    return None
                chunks.append(chunk)
            return b"".join(chunks) if process.wait(timeout=max(0.0, deadline - time.monotonic())) == 0 else None
        except subprocess.TimeoutExpired:
            return None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()

    # ------------------------------------------------------------------ the engine itself

    def version(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """The engine's (server's) version; EngineError when it does not answer."""
        return self.call("version", "--format", "{{.Server.Version}}", timeout=timeout).stdout.decode().strip()

    def answers(self, timeout: float = DEFAULT_TIMEOUT, pauses: tuple[float, ...] | None = None) -> str | None:
        """None when the engine answers, else why not (one line). Asked again after each of
        ``pauses`` seconds (default ``ANSWER_PAUSES``): a busy engine that misses one question
        is not an absent one (every row that runs model code would be "not run" behind it). One
        that let the question run out its time is not asked again: it is ``silent`` from then on."""
        if self.silent is not None:
            return self.silent
        for pause in (*(ANSWER_PAUSES if pauses is None else pauses), None):
            why = self._answer_once(timeout)
            if why is None or pause is None or self.silent is not None:
                return why
            time.sleep(pause)
        return why

    def _answer_once(self, timeout: float) -> str | None:
        try:
            run = self.call("version", "--format", "{{.Server.Version}}", timeout=timeout, check=False)
        except EngineError:  # with check=False: only when the question ran out its time
            self.silent = f"no container engine answered within {timeout:g} s ({self.where()})"
            return self.silent
        except ServingError as error:
            return str(error)
        if run.returncode != 0 or not run.stdout.strip():
            last = (run.stderr.decode(errors="replace").strip().splitlines() or ["no answer"])[-1][:200]
            return f"no container engine answers at {self.host or 'the default socket'} ({self.name}: {last})"
        return None

    @cached_property
    def is_podman(self) -> bool:
        """Podman: its own client, or Docker's client on Podman's socket (its version says so)."""
        if self.name == "podman":
            return True
        run = self.call("version", check=False)
        return b"podman" in run.stdout.lower()

    def tmpfs_owner(self, uid: int, gid: int) -> str:
        """The tmpfs options giving a mount to the container's user (:func:`tmpfs_owner_options`)."""
        return tmpfs_owner_options(uid, gid, self.is_podman)

    def ignores_limits(self) -> str | None:
        """Why the engine does not enforce a container's memory and CPU limits, or None."""
        if self.name != "podman":
            return None
        run = self.call("info", "--format", "{{.Host.Security.Rootless}} {{.Host.CgroupsVersion}}", check=False)
        if run.stdout.decode(errors="replace").split() == ["true", "v1"]:
            return "rootless Podman on cgroup v1 ignores resource limits"
        return None

    def networks(self) -> list[str]:
        """The names of the engine's networks."""
        return self.call("network", "ls", "--format", "{{.Name}}").stdout.decode().split()

    def events(self, since: float, until: float, *filters: str, timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
        """The engine's events between two times (Unix seconds), each ``{"type", "action", "name"}``;
        ``filters`` as the client takes them (``type=container``, ``event=create``)."""
        options = [argument for entry in filters for argument in ("--filter", entry)]
        if self.name == "podman":
            # Podman's client (4.3) prints its own json, and no events at all for an --until in the
            # past: asked up to a second from now, the events after ``until`` are dropped below.
            times = [datetime.fromtimestamp(moment, timezone.utc).isoformat() for moment in (since, time.time() + 1)]
            layout = "json"
        else:
            times, layout = [f"{since:.3f}", f"{until:.3f}"], "{{json .}}"
        run = self.call("events", "--since", times[0], "--until", times[1], *options, "--format", layout, timeout=timeout)
        found = []
        for line in run.stdout.decode(errors="replace").splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            if _event_time(event.get("Time")) > until:
                continue
            found.append(_event_row(event))
        return found

    @contextlib.contextmanager
    def watching(self, *filters: str) -> Iterator[list[dict]]:
        """The engine's events from now until the block ends, read as they come, as ``events``
        gives them: an engine keeps only its last few hundred for a later ``--since`` (a busy one
        has dropped a run's first events by its end)."""
        options = [argument for entry in filters for argument in ("--filter", entry)]
        now = time.time()
        if self.name == "podman":
            since, layout = datetime.fromtimestamp(now, timezone.utc).isoformat(), "json"
        else:
            since, layout = f"{now:.3f}", "{{json .}}"
        # From now: what happens before the client has subscribed comes from the engine's log.
        process = subprocess.Popen(
            self.argv("events", "--since", since, *options, "--format", layout),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=child_environment(),
        )
        found: list[dict] = []

        def read() -> None:
            for line in process.stdout:
                with contextlib.suppress(ValueError):
                    found.append(_event_row(json.loads(line)))

        reader = threading.Thread(target=read, name="engine-events", daemon=True)
        reader.start()
        try:
            yield found
            time.sleep(WATCH_SETTLE)  # the last events reach the client
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            reader.join(timeout=10)

    # ------------------------------------------------------------------ images

    def image_inspect(self, image: str, timeout: float = DEFAULT_TIMEOUT) -> dict | None:
        """The engine's description of a local image (the plain JSON both engines print), or None
        when there is no such image; EngineError when the engine does not answer."""
        return self._inspect("image", image, timeout)

    def _inspect(self, kind: str, name: str, timeout: float) -> dict | None:
        """``<engine> <kind> inspect <name>``: its plain JSON, or None when there is no such thing."""
        run = self.call(kind, "inspect", name, timeout=timeout, check=False)
        if run.returncode != 0:
            if MISSING.search(run.stderr.decode(errors="replace")):
                return None
            raise EngineError(f"{self.name} {kind} inspect {name} failed (exit {run.returncode}): {tail(run.stderr)}")
        found = json.loads(run.stdout)
        return found[0] if found else None

    def image_exists(self, image: str) -> bool:
        return self.image_inspect(image) is not None

    def image_labels(self, image: str) -> dict[str, str]:
        """The labels of a local image ({} when it has none); EngineError when it is not there."""
        found = self.image_inspect(image)
        if found is None:
            raise EngineError(f"no image {image} in {self.where()}")
        return dict((found.get("Config") or {}).get("Labels") or {})

    def pull(self, image: str, timeout: float = 30) -> str | None:
        """None when ``image`` was pulled within ``timeout`` seconds, else why not (one line)."""
        try:
            self.call("pull", "-q", image, timeout=timeout)
        except ServingError as error:
            return str(error)[-200:]
        return None

    def tag(self, image: str, repository: str, tag: str | None) -> None:
        """Give ``image`` the name ``repository[:tag]`` (repository and tag apart, as Podman's API
        needs them; the client takes them joined)."""
        self.call("tag", image, f"{repository}:{tag}" if tag else repository)

    def commit(self, container: str, repository: str, tag: str, changes: list[str], timeout: float = 300) -> None:
        """A new image ``repository:tag`` of a stopped container, with Dockerfile ``changes``."""
        options = [argument for change in changes for argument in ("--change", change)]
        self.call("commit", *options, container, f"{repository}:{tag}", timeout=timeout)

    # ------------------------------------------------------------------ containers

    def run(self, *args: str, timeout: float = DEFAULT_TIMEOUT, stdin: bytes | None = None, check: bool = False):
        """``<engine> run <args>`` to its end (the caller names ``--rm`` and everything else)."""
        return self.call("run", *args, timeout=timeout, stdin=stdin, check=check)

    def exec_argv(self, container: str, command: list[str], workdir: str | None = None, interactive: bool = True) -> list[str]:
        """The command line of ``<engine> exec`` (for a caller that streams it)."""
        options = (["-i"] if interactive else []) + (["--workdir", workdir] if workdir else [])
        return self.argv("exec", *options, container, *command)

    def exec(
        self, container: str, command: list[str], stdin: bytes = b"", workdir: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """One command in a running container, to its end (never raises for its exit status)."""
        return self.call(*self.exec_argv(container, command, workdir)[1:], stdin=stdin, timeout=timeout, check=False)

    def container_inspect(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> dict | None:
        """The engine's description of a container, or None when there is none of that name."""
        return self._inspect("container", name, timeout)

    def container_exists(self, name: str) -> bool:
        return self.container_inspect(name) is not None

    def remove(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Remove a container, running or not (nothing when it is gone already)."""
        self.call("rm", "--force", name, timeout=timeout, check=False)

    def logs(
        self,
        name: str,
        lines: int | None = None,
        cap: int = 4 * 2**20,
        timeout: float = DEFAULT_TIMEOUT,
        since: str | None = None,
    ) -> str:
        """A container's output, stdout and stderr interleaved: its last ``lines`` (all when None),
        written at or after ``since`` (an RFC 3339 time, when given), at most its last ``cap`` bytes."""
        chosen = [*(["--tail", str(lines)] if lines is not None else []), *(["--since", since] if since else [])]
        process = subprocess.Popen(
            self.argv("logs", *chosen, name),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_environment(),
        )  # fmt: skip
        deadline, kept = time.monotonic() + timeout, b""
        try:
            while True:
                ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    kept += b"\n(the engine's log output stopped here: timeout)"
                    break
                chunk = os.read(process.stdout.fileno(), 1 << 20)
                if not chunk:
                    break
                kept = (kept + chunk)[-cap:]
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()
        return kept.decode(errors="replace")

    def diff(self, name: str) -> list[str]:
        """The paths a container changed in its own layer (``<engine> diff``)."""
        run = self.call("diff", name)
        return [line.split(" ", 1)[1] for line in run.stdout.decode(errors="replace").splitlines() if line.strip()]


def _event_row(event: dict) -> dict:
    actor = (event.get("Actor") or {}).get("Attributes") or {}
    return {
        "type": event.get("Type") or event.get("type"),
        "action": event.get("Action") or event.get("Status") or event.get("status"),
        "name": actor.get("name") or event.get("Name"),
    }


def _event_time(stamp) -> float:
    """Unix seconds of a Podman event's ``Time`` (RFC 3339, nanoseconds); 0 when absent (Docker's)."""
    if not isinstance(stamp, str):
        return 0.0
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    if not match:
        return 0.0
    whole = datetime.fromisoformat(match.group(1) + match.group(3).replace("Z", "+00:00")).timestamp()
    return whole + float("0." + (match.group(2) or "0"))


@cache
def _engine_for(wanted: str, host: str | None, path: str) -> Engine:
    for name in [wanted] if wanted else ["docker", "podman"]:
        found = shutil.which(name, path=path)
        if found:
            return Engine(found, host)
    raise DockerUnavailable(
        f"no container engine client found ({wanted or 'docker or podman'} on PATH): model code runs only inside the "
        "serving image. Install Docker or Podman (dismcli needs one too), or pass --no-container to judge it on this "
        "machine (a verdict that cannot pass the gate)"
    )


def engine_answers() -> str | None:
    """None when the settings' engine answers, else why not (one line)."""
    try:
        return Engine.from_settings().answers()
    except DockerUnavailable as error:
        return str(error)


def network_setting() -> str:
    value = os.environ.get(NETWORK_ENV, "none").strip().lower() or "none"
    if value not in NETWORK_MODES:
        raise ServingError(f"{NETWORK_ENV}={value!r}: expected one of {', '.join(NETWORK_MODES)}")
    return value


def resolve_network_mode(engine: Engine | None = None) -> str:
    """``none`` (also for ``auto``), ``host`` or ``bridge`` (only when the engine has one)."""
    mode = network_setting()
    if mode in ("none", "auto", "host"):
        return "none" if mode == "auto" else mode
    engine = engine or Engine.from_settings()
    if "bridge" not in engine.networks():
        raise ServingError(
            f"{NETWORK_ENV}=bridge but the engine has no network named 'bridge' (started with --bridge=none?); "
            f"use {NETWORK_ENV}=none (the default) or host"
        )
    return "bridge"
