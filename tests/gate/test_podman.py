"""The whole gate with Podman instead of Docker, as on lxplus: the worker container through the
``podman`` client, the stand-in image and the server layer through Podman's Docker-compatible
API socket (``DOCKER_HOST``), as testcontainers supports.

The engine here is rootful Podman 4.3 (Debian 12's package), its API served by a
``podman system service`` this test starts on a socket of its own and stops by its PID. The
machine cannot raise resource limits, so ``CONTAINERS_CONF`` names a containers.conf whose
``default_ulimits`` stay within them (``.ci/setup`` writes it). Nothing uses Podman's default
network: the worker and the served container run with network none (requests to the served one
carried in by ``podman exec``).

In CI (``CI=true``) Podman must be there: a missing engine is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dialsgate.container.engine import Engine

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "nmf1d"
CORE_IMAGE = "dialsgate-standin:mlserver-1.5.0-core"


def _podman_or_skip() -> str:
    found = shutil.which("podman")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("podman is not installed; .ci/setup installs it from Debian's packages")
    pytest.skip("podman is not installed here")


@pytest.fixture(scope="module")
def podman_socket(tmp_path_factory):
    podman = _podman_or_skip()
    socket = tmp_path_factory.mktemp("podman") / "podman.sock"
    service = subprocess.Popen(
        [podman, "system", "service", "--time=0", f"unix://{socket}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline, delay = time.monotonic() + 30, 0.05
    while not socket.exists():
        assert service.poll() is None, f"podman system service exited: {service.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "podman's API socket did not appear within 30 s"
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    try:
        yield f"unix://{socket}"
    finally:
        service.terminate()
        service.wait(timeout=30)


#: An image's labels as Docker and Podman both print them (Go's JSON: sorted keys).
LABELS_FORMAT = "{{json .Config.Labels}}"


def _labels(client: str, image: str) -> str | None:
    """The image's labels, or None when the client's storage has no such image."""
    found = subprocess.run([client, "image", "inspect", "--format", LABELS_FORMAT, image], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


@pytest.fixture(scope="module")
def podman_environment(podman_socket):
    """The stand-in core image in Podman's storage (copied from Docker's, where .ci/setup built it),
    copied again when Docker's is another build (its labels: pins and recipe)."""
    if _labels("podman", CORE_IMAGE) != _labels("docker", CORE_IMAGE):
        saved = subprocess.Popen(["docker", "save", CORE_IMAGE], stdout=subprocess.PIPE)
        loaded = subprocess.run(["podman", "load"], stdin=saved.stdout, capture_output=True, text=True)
        saved.wait()
        assert saved.returncode == 0 and loaded.returncode == 0, loaded.stderr[-2000:]
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith(("TOX_", "VIRTUAL_ENV"))},
        "DOCKER_HOST": podman_socket,
        "DIALSGATE_ENGINE": "podman",
        "DIALSGATE_NO_PULL": "1",
    }


def test_the_gate_passes_the_example_with_podman(podman_environment, tmp_path):
    copy = tmp_path / "nmf1d"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [tmp_path, copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    started = time.time()
    finished = subprocess.run(
        [sys.executable, "-m", "dialsgate", "check", str(copy / "template.yaml"), "--report", str(tmp_path / "report")],
        cwd=REPOSITORY, env=podman_environment, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    document = json.loads((tmp_path / "report" / "verdict.json").read_text())
    failed = [row for row in document["rows"] if row["result"] not in ("passed", "not applicable")]
    assert finished.returncode == 0 and not failed, f"{failed}\n{finished.stdout[-4000:]}\n{finished.stderr[-2000:]}"
    assert {row["layer"] for row in document["rows"]} == {"fast", "parity", "server"}
    assert document["provenance"]["model_code"]["where"] == "worker container"
    # Everything ran in Podman: it created the gate's worker and served containers, Docker's engine
    # none of them (by name: Docker's engine may be running other gates meanwhile), and Podman
    # removed its own.
    ended = time.time() + 1
    podman, docker = Engine(shutil.which("podman")), Engine(shutil.which("docker"))
    prefixes = ("dialsgate-worker-", "dialsgate-serve-")
    ours = {event["name"] for event in podman.events(started, ended, "type=container", "event=create")}
    ours = {name for name in ours if (name or "").startswith(prefixes)}
    assert all(any(name.startswith(prefix) for name in ours) for prefix in prefixes), ours
    in_docker = {event["name"] for event in docker.events(started, ended, "type=container", "event=create")}
    assert not ours & in_docker, f"containers created in Docker: {ours & in_docker}"
    left = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout.split()
    assert not [name for name in left if name.startswith(("dialsgate-worker-", "dialsgate-serve-"))], left


ROOTLESS_USER = "dialsgate-rootless"
ROOTLESS_GATE = r"""
set -euo pipefail
cd "$WORK"
# A stable runtime folder: Podman records the first one it was given in its database.
export XDG_RUNTIME_DIR="$HOME/.dialsgate-podman-run"; mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"
# A copy of an earlier build (other pins or recipe) is replaced.
[[ "$(podman image inspect --format "$LABELS_FORMAT" "$CORE_IMAGE" 2>/dev/null)" == "$(cat "$WORK/core.labels")" ]] ||
    podman load --input "$WORK/core.tar" >/dev/null
python3 -m venv venv && venv/bin/pip install --quiet ./source
podman system service --time=0 "unix://$XDG_RUNTIME_DIR/podman.sock" &
service=$!
# Stop what Podman started for this user too: its API service and its pause process (which
# keeps the user namespace alive after the last command).
trap 'kill $service; kill "$(cat "$XDG_RUNTIME_DIR/libpod/tmp/pause.pid" 2>/dev/null)" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -S "$XDG_RUNTIME_DIR/podman.sock" ]] && break; sleep 0.1; done
# The author's umask is 077: the folder is readable by its owner only (not by the container's sub-uid).
cp -r source/examples/nmf1d model && chmod -R go-rwx model
export DOCKER_HOST="unix://$XDG_RUNTIME_DIR/podman.sock" DIALSGATE_ENGINE=podman DIALSGATE_NO_PULL=1
venv/bin/dialsgate check model/template.yaml --report report
"""


def _not_in_the_copy(folder: str, names: list[str]) -> set[str]:
    """Caches and environments; the gate's own report and build folders at the top only."""
    ignored = set(shutil.ignore_patterns(".git", ".tox", ".tools", ".venv", "__pycache__", "*.egg-info")(folder, names))
    return ignored | ({"report", "build"} & set(names) if Path(folder) == REPOSITORY else set())


def _system_command(name: str) -> str:
    """useradd and runuser live in /usr/sbin, which a test environment's PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin") or name


@pytest.fixture
def rootless_work():
    """A folder the rootless user owns, outside pytest's own (root-only) temporary folders."""
    folder = Path(tempfile.mkdtemp(prefix="dialsgate-rootless-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_gate_passes_with_rootless_podman_and_a_private_folder(rootless_work):
    """Rootless Podman (as on lxplus): uid 1000 in the containers is a sub-uid of the user's, who
    keeps the folder private (umask 077); the gate mounts readable copies, so it passes."""
    _podman_or_skip()
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root: it creates the rootless user itself")
        pytest.skip("creating the rootless user needs root")
    if subprocess.run(["id", ROOTLESS_USER], capture_output=True).returncode != 0:
        subprocess.run([_system_command("useradd"), "--create-home", ROOTLESS_USER], check=True)  # Debian adds its sub-uid range
    work = rootless_work
    shutil.copytree(REPOSITORY, work / "source", symlinks=True, ignore=_not_in_the_copy)  # the corpus has links to planted files
    with open(work / "core.tar", "wb") as archive:
        subprocess.run(["docker", "save", CORE_IMAGE], stdout=archive, check=True)
    (work / "core.labels").write_text(_labels("docker", CORE_IMAGE) + "\n")
    subprocess.run(["chown", "-R", ROOTLESS_USER, str(work)], check=True)
    # The machine's settings (pip's index, proxies), none of this process's own or root's.
    kept = {
        k: v
        for k, v in os.environ.items()
        if k.startswith(
            ("PIP_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT", "REQUESTS_CA")
        )
    }
    environment = {**kept, "PATH": "/usr/bin:/bin", "HOME": f"/home/{ROOTLESS_USER}", "WORK": str(work), "CORE_IMAGE": CORE_IMAGE, "LABELS_FORMAT": LABELS_FORMAT,
                   "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", ""), "LANG": "C.UTF-8"}  # fmt: skip
    finished = subprocess.run(
        [_system_command("runuser"), "-u", ROOTLESS_USER, "--", "bash", "-c", ROOTLESS_GATE], cwd=work, env=environment,
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    verdict = work / "report" / "verdict.json"
    assert verdict.is_file(), f"{finished.stdout[-4000:]}\n{finished.stderr[-3000:]}"
    document = json.loads(verdict.read_text())
    failed = [row for row in document["rows"] if row["result"] not in ("passed", "not applicable")]
    assert finished.returncode == 0 and not failed, f"{failed}\n{finished.stdout[-4000:]}\n{finished.stderr[-2000:]}"
    assert document["provenance"]["model_code"]["where"] == "worker container"
