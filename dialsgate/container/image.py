"""The serving image: the real one when present or pullable, else our stand-in (its core built
from Debian and PyPI by ``build-standin-image.sh``, plus the folder's extra image packages)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dialsgate.container.engine import ServingError, docker_client, image_exists, parse_repository_tag
from dialsgate.environment.profiles import profile_for_image
from dialsgate.environment.serving import cache_dir

#: Builds the core of a stand-in image (shipped with dialsgate).
STANDIN_SCRIPT = Path(__file__).resolve().parent / "build-standin-image.sh"


STANDIN_LABEL = "org.dialsgate.standin"


PACKAGE_SET_LABEL = "org.dialsgate.package-set"


def is_standin(image: str, client=None) -> bool:
    """True when ``image`` is one of our stand-ins (labelled), False for a real or foreign image."""
    client = client or docker_client()
    labels = client.images.get(image).labels or {}
    return STANDIN_LABEL in labels


def package_set_hash(profile, requirements) -> str:

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

    Wheels are fetched on the host for the image's Python and platform (pip ``--python-version``
    and ``--platform``), then installed with no network inside a container of ``base``, which is
    committed under a tag naming the set.
    """
    digest = package_set_hash(profile, requirements)
    tag = f"dialsgate-standin:{profile.name}-{digest}"
    if image_exists(tag, client):
        return tag
    log(f"building {tag}: {base} + {', '.join(requirements)}")

    wheelhouse = cache_dir() / "wheelhouse" / digest
    wheelhouse.mkdir(parents=True, exist_ok=True)
    # Wheels for the image's Python, machine and C library, fetched by this interpreter's pip:
    # no interpreter of the image's version is needed on this machine.
    major, minor = profile.python_minor
    platforms = [argument for tag in profile.wheel_platforms() for argument in ("--platform", tag)]
    _run_logged(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--only-binary", ":all:", "--python-version", f"{major}.{minor}", "--implementation", "cp",
         "--abi", f"cp{major}{minor}", *platforms,
         "-d", str(wheelhouse), *requirements, "-c", str(profile.packages_file)],
        log,
        "downloading the extra wheels",
    )  # fmt: skip
    wheelhouse.chmod(0o755)
    for wheel in wheelhouse.iterdir():
        wheel.chmod(0o644)
    import docker.types  # Late: the docker package is in the server layer's environment only

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
    repository, tag = parse_repository_tag(image)
    client.images.get(target).tag(repository, tag=tag)  # apart: Podman's API refuses "repo:tag" as the repository
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
