"""The serving image: the real one when present or pullable, else our stand-in (its core built
from Debian and PyPI by ``build-standin-image.sh``, plus the folder's extra image packages)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from dialsgate.container.engine import ENGINE_ENV, Engine, ServingError, parse_repository_tag
from dialsgate.environment.profiles import profile_for_image
from dialsgate.environment.serving import cache_dir
from dialsgate.spawning import child_environment

#: Builds the core of a stand-in image (shipped with dialsgate).
STANDIN_SCRIPT = Path(__file__).resolve().parent / "build-standin-image.sh"


STANDIN_LABEL = "org.dialsgate.standin"


PACKAGE_SET_LABEL = "org.dialsgate.package-set"


def package_set_hash(profile, requirements) -> str:

    text = "\n".join([profile.name, profile.core_file.read_text(), *sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run_logged(
    command: list[str], log: Callable[[str], None], what: str, cwd: str | None = None, env: dict | None = None
) -> None:
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    tail: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        log(line)
        tail = (tail + [line])[-30:]
    if process.wait() != 0:
        raise ServingError(f"{what} failed (exit {process.returncode}); its last lines:\n" + "\n".join(tail))


def _try_pull(image: str, engine: Engine, log: Callable[[str], None], timeout: int = 30) -> bool:
    log(f"image {image} is not present: trying {engine.name} pull (timeout {timeout} s)")
    why = engine.pull(image, timeout=timeout)
    if why is None:
        log(f"pulled {image}")
        return True
    log(f"pull failed: {why}")
    return False


def script_environment(engine: Engine) -> dict[str, str]:
    """The stand-in script's environment: the engine client chosen here, and this interpreter to
    read the image profile (``python -m dialsgate.environment.profiles``)."""
    return {**child_environment(), ENGINE_ENV: engine.client, "DIALSGATE_PYTHON": sys.executable}


def _extras_image(base: str, profile, requirements: list[str], engine: Engine, log: Callable[[str], None]) -> str:
    """``base`` plus the image packages a folder needs beyond the core; built once per set.

    Wheels are fetched on the host for the image's Python and platform (pip ``--python-version``
    and ``--platform``), then installed with no network inside a container of ``base``, which is
    committed under a tag naming the set.
    """
    digest = package_set_hash(profile, requirements)
    tag = f"dialsgate-standin:{profile.name}-{digest}"
    if engine.image_exists(tag):
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
    shutil.copyfile(profile.packages_file, wheelhouse / "constraints.txt")
    (wheelhouse / "constraints.txt").chmod(0o644)
    container = f"dialsgate-extras-{digest}-{os.getpid()}"
    try:
        # A bind mount (not a volume: the committed image would declare it), no network.
        run = engine.run(
            "--name", container, "--user", "0", "--network", "none",
            "--mount", f"type=bind,source={wheelhouse},target=/wheels,readonly",
            base, "python", "-m", "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
            "--find-links", "/wheels", *requirements, "-c", "/wheels/constraints.txt",
            timeout=1800,
        )  # fmt: skip
        if run.returncode != 0:
            output = (run.stdout + run.stderr).decode(errors="replace")[-3000:]
            raise ServingError(f"installing {requirements} into {base} failed:\n{output}")
        base_config = (engine.image_inspect(base) or {}).get("Config") or {}
        changes = [
            f"USER {base_config.get('User') or '1000'}",
            f"CMD {json.dumps(base_config.get('Cmd') or ['mlserver', 'start', '/mnt/models'])}",
            f"LABEL {PACKAGE_SET_LABEL}={digest}",
        ]
        repository, name_tag = parse_repository_tag(tag)
        engine.commit(container, repository, name_tag or "latest", changes)
    finally:
        engine.remove(container)
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

    engine = Engine.from_settings()
    profile = profile or profile_for_image(image)
    # One gate run prepares each image once, whatever number of resources and checks ask.
    key = (engine.client, engine.host, image, profile.name, tuple(sorted(requirements)))
    if key not in _PREPARED:
        _PREPARED[key] = _prepare_image(image, log, profile, list(requirements), engine)
    return _PREPARED[key]


#: {(engine client, image, profile, requirements): the image to run}, prepared in this process.
_PREPARED: dict[tuple, str] = {}


def _prepare_image(image: str, log: Callable[[str], None], profile, requirements: list[str], engine: Engine) -> str:
    found = engine.image_inspect(image)
    if found is not None and STANDIN_LABEL not in _labels(found):
        return image
    if found is None and os.environ.get("DIALSGATE_NO_PULL") != "1" and _try_pull(image, engine, log):
        return image
    base = f"dialsgate-standin:{profile.name}-core"
    core = engine.image_inspect(base)
    if core is None or not standin_is_current(_labels(core), profile):
        core = None  # (re)built by the script: its old description says nothing of the new image
        _run_logged(
            ["bash", str(STANDIN_SCRIPT), "--image", base, "--profile", str(profile.folder), "--no-pull"],
            log,
            f"{STANDIN_SCRIPT}",
            env=script_environment(engine),
        )
    target = _extras_image(base, profile, list(requirements), engine, log) if requirements else base
    # The template's name points at it too (for `dismcli start-api` by hand); the gate itself runs
    # `target`, so two gates with different package sets never race on that one name.
    already = found is not None and core is not None and target == base and found.get("Id") == core.get("Id")
    if not already:
        repository, tag = parse_repository_tag(image)
        engine.tag(target, repository, tag)
    log(f"{image} -> {target}")
    return target


def _labels(described: dict) -> dict[str, str]:
    return dict((described.get("Config") or {}).get("Labels") or {})


@cache
def script_setting(name: str) -> str:
    """A setting of the stand-in script (its line ``NAME="value"``), read from the script, the
    one place it is written (once per process: the script ships with the gate)."""
    found = re.search(rf'^{name}="([^"$`]*)"', STANDIN_SCRIPT.read_text(), re.MULTILINE)
    if found is None:
        raise ServingError(f"{STANDIN_SCRIPT} sets no {name}")
    return found.group(1)


def standin_is_current(labels: dict[str, str], profile) -> bool:
    """True when an image's labels say it is the stand-in core the script builds for ``profile``
    today: the digest of the profile's pins (the script's ``PINS_SHA``: sha256 of the core file
    then the packages file) and the recipe's version. Then the script is not run, which would
    say "up to date" after reading the profile in a Python of its own and asking the engine
    (about 0.15 s of every warm gate run)."""
    pins = hashlib.sha256(profile.core_file.read_bytes() + profile.packages_file.read_bytes()).hexdigest()
    return labels.get(script_setting("LABEL_KEY")) == pins and labels.get(script_setting("RECIPE_KEY")) == script_setting(
        "RECIPE_VERSION"
    )


def image_build_or_check(image: str, log: Callable[[str], None] = print) -> tuple[str, float]:
    """Run the stand-in build script even when the image exists (it says "up to date" quickly).

    Returns (last line of its output, seconds). Falls back to :func:`ensure_image` when the
    repository has no such script.
    """
    script = STANDIN_SCRIPT
    start = time.perf_counter()
    if not script.is_file():
        return ensure_image(image, log), time.perf_counter() - start
    engine = Engine.from_settings()
    why = engine.answers()
    if why:
        raise ServingError(why)
    result = subprocess.run(
        ["bash", str(script), "--image", image],
        cwd=str(script.parent.parent),
        env=script_environment(engine),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    for line in lines:
        log(line)
    if result.returncode != 0:
        raise ServingError(f"{script} --image {image} failed (exit {result.returncode}):\n" + "\n".join(lines[-30:]))
    return (lines[-1] if lines else "done"), time.perf_counter() - start
