"""The container engine (Docker or Podman through the Docker API), its client and its network.

``DIALSGATE_DOCKER_NETWORK``, the served container's network: ``none`` (default; ``auto`` is the
same): no network at all, requests carried into its namespace by ``<engine> exec``
(``container.relay``), so the served model code has no route off the machine on any engine;
``host`` (host networking, MLServer on 127.0.0.1 and free ports); ``bridge`` (the default bridge,
the container's ports published on 127.0.0.1)."""

from __future__ import annotations

import os
import shutil
import subprocess

NETWORK_ENV = "DIALSGATE_DOCKER_NETWORK"


NETWORK_MODES = ("none", "host", "bridge", "auto")


class ServingError(RuntimeError):
    """The model folder could not be served (no engine, no image, model never ready...)."""


class DockerUnavailable(ServingError):
    """No Docker engine answers."""


#: The engine's command line client: docker or podman (default: docker when on PATH, else podman).
ENGINE_ENV = "DIALSGATE_ENGINE"


def engine_command() -> list[str]:
    """The engine's command line client (``docker`` or ``podman``), as a command prefix."""
    wanted = os.environ.get(ENGINE_ENV, "").strip()
    for name in [wanted] if wanted else ["docker", "podman"]:
        found = shutil.which(name)
        if found:
            return [found]
    raise DockerUnavailable(
        f"no container engine client found ({wanted or 'docker or podman'} on PATH): model code runs only inside the "
        "serving image. Install Docker or Podman (dismcli needs one too), or pass --no-container to judge it on this "
        "machine (a verdict that cannot pass the gate)"
    )


def engine_answers() -> str | None:
    """None when the engine answers, else why not (one line)."""
    try:
        command = engine_command()
    except DockerUnavailable as error:
        return str(error)
    run = subprocess.run([*command, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    if run.returncode != 0 or not run.stdout.strip():
        where = os.environ.get("DOCKER_HOST", "the default socket")
        last = (run.stderr.strip().splitlines() or ["no answer"])[-1][:200]
        return f"no container engine answers at {where} ({os.path.basename(command[0])}: {last})"
    return None


def network_setting() -> str:
    value = os.environ.get(NETWORK_ENV, "none").strip().lower() or "none"
    if value not in NETWORK_MODES:
        raise ServingError(f"{NETWORK_ENV}={value!r}: expected one of {', '.join(NETWORK_MODES)}")
    return value


def docker_client():
    """A docker SDK client that has answered a ping, or DockerUnavailable with what to do."""
    import docker  # Late: the docker package is in the server layer's environment only

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
    """``none`` (also for ``auto``), ``host`` or ``bridge`` (only when the engine has one)."""
    mode = network_setting()
    if mode in ("none", "auto", "host"):
        return "none" if mode == "auto" else mode
    client = client or docker_client()
    if not any(network.name == "bridge" for network in client.networks.list(names=["bridge"])):
        raise ServingError(
            f"{NETWORK_ENV}=bridge but the Docker engine has no network named 'bridge' (started with --bridge=none?); "
            f"use {NETWORK_ENV}=none (the default) or host"
        )
    return "bridge"


def parse_repository_tag(image: str) -> tuple[str, str | None]:
    """``registry:5000/a/b:1.5.0`` -> (``registry:5000/a/b``, ``1.5.0``); a digest stays in the repository."""
    if "@" in image:
        return image, None
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:  # no tag, only a registry port
        return image, None
    return repository, tag


def image_exists(image: str, client=None) -> bool:
    import docker.errors  # Late: the docker package is in the server layer's environment only

    client = client or docker_client()
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True
