"""The container engine (Docker or Podman through the Docker API) and its network.

``DIALSGATE_DOCKER_NETWORK``: ``host`` (host networking, MLServer on 127.0.0.1 and free ports:
the only choice on engines started with ``--bridge=none``), ``bridge`` (the default bridge, the
container's ports published on 127.0.0.1), ``auto`` (default: ``host`` when the engine has no
network named ``bridge``)."""

from __future__ import annotations

import os

NETWORK_ENV = "DIALSGATE_DOCKER_NETWORK"


NETWORK_MODES = ("host", "bridge", "auto")


class ServingError(RuntimeError):
    """The model folder could not be served (no engine, no image, model never ready...)."""


class DockerUnavailable(ServingError):
    """No Docker engine answers."""


def network_setting() -> str:
    value = os.environ.get(NETWORK_ENV, "auto").strip().lower() or "auto"
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
    import docker.errors  # Late: the docker package is in the server layer's environment only

    client = client or docker_client()
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True
