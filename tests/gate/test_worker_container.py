"""The worker container is the sandbox docs/gate.md says it is: asked of the engine
(``<engine> inspect``) and tried from inside, not read back from our own arguments.

No network, uid 1000, no capabilities, the folder and the model file read-only copies, a
read-only root with scratch, /tmp and the image user's home in memory (each bounded), memory,
CPU and process limits; nothing written inside reaches the host; removed on close and when the
process that started it is killed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sandbox_probes import WRITES

from dialsgate.container.engine import Engine
from dialsgate.container.image import ensure_image
from dialsgate.container.sandbox import DEFAULT_MEMORY, FALLBACK_HOME, ImageUser, limits_for, usable_home, writable_places
from dialsgate.container.worker import WorkerContainer
from dialsgate.contract.template import load_contract
from dialsgate.transports.worker import Worker

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "nmf1d" / "template.yaml"

PROBE = r"""
import json, os, socket, sys
folder, model_file, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
found = {"uid": os.getuid(), "cwd": os.getcwd()}
for name, path in (("folder", os.path.join(folder, "app.py.written")), ("model", model_file + ".written"),
                   ("scratch", "/scratch/written"), ("home", os.path.expanduser("~/written"))):
    try:
        with open(path, "w") as stream:
            stream.write("x")
        found[name] = "written"
    except OSError as error:
        found[name] = f"{type(error).__name__}: {error.strerror}"
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    found["network"] = "connected"
except OSError as error:
    found["network"] = f"{type(error).__name__}: {error}"
found["interfaces"] = sorted(name for _, name in socket.if_nameindex())
print(json.dumps(found))
"""


def home_of_uid_1000(name: str) -> str:
    """The home of uid 1000 as the image's own passwd database says (``getent`` inside)."""
    entry = Engine.from_settings().exec(name, ["getent", "passwd", "1000"], timeout=60)
    assert entry.returncode == 0, entry.stderr
    return entry.stdout.decode().strip().split(":")[5]


def layer_changes(name: str) -> list[str]:
    """What the container changed in its own (on-disk) layer, as ``<engine> diff`` lists it."""
    return Engine.from_settings().diff(name)


@pytest.fixture(scope="module")
def contract():
    return load_contract(EXAMPLE)


@pytest.fixture(scope="module")
def worker(contract):
    made = WorkerContainer(contract, ensure_image(contract.image, log=lambda line: None))
    yield made
    made.close()


def _inspect(name: str) -> dict:
    found = Engine.from_settings().container_inspect(name)
    assert found is not None, f"no container {name}"
    return found


def test_the_engine_runs_it_with_no_network_the_images_user_and_limits(worker):
    found = _inspect(worker.name)
    host = found["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert found["Config"]["User"] == "1000"
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == DEFAULT_MEMORY and host["MemorySwap"] == DEFAULT_MEMORY
    assert host["NanoCpus"] == int(min(2, os.cpu_count()) * 1e9)
    assert host["PidsLimit"] == 4096 and host["AutoRemove"] is True
    assert host["ReadonlyRootfs"] is True
    assert sorted(host["Tmpfs"]) == sorted(["/scratch", "/tmp", home_of_uid_1000(worker.name)])
    mounts = {mount["Destination"]: mount for mount in found["Mounts"]}
    assert set(mounts) == {worker.folder, "/mnt/model"}, mounts
    assert not any(mount["RW"] for mount in mounts.values())
    # Copies, never the author's own folder or file.
    assert not any(str(REPOSITORY) in mount["Source"] for mount in mounts.values())


def test_model_code_inside_can_write_only_scratch_and_home_and_reach_nothing(worker):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        port = listener.getsockname()[1]
        run = worker.exec(["python", "-I", "-c", PROBE, worker.folder, worker.model_file, str(port)])
    finally:
        listener.close()
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    found = json.loads(run.stdout)
    assert found["uid"] == 1000 and found["cwd"] == "/scratch"
    assert found["folder"].startswith("OSError: Read-only file system"), found
    assert found["model"].startswith("OSError: Read-only file system"), found
    assert found["scratch"] == "written" and found["home"] == "written"
    assert found["network"].startswith(("OSError", "ConnectionRefusedError")) and found["interfaces"] == ["lo"], found


def test_the_root_is_read_only_and_tmp_and_home_are_small_and_in_memory(worker):
    home = home_of_uid_1000(worker.name)
    assert home == "/home/mlserver"  # the stand-in's user (build-standin-image.sh)
    places = {
        "write": ["/opt/mlserver/written", "/etc/written", "/written", "/tmp/written", f"{home}/written", "/scratch/written"],
        "fill": ["/tmp", home],
    }
    run = worker.exec(["python", "-I", "-c", WRITES, json.dumps(places)], timeout=300)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    found = json.loads(run.stdout)
    assert [found[path] for path in places["write"][:3]] == ["EROFS"] * 3, found
    assert [found[path] for path in places["write"][3:]] == ["written"] * 3, found
    # Full at its size (256 MiB, 64 MiB), far below the memory limit: the size is the tmpfs's.
    assert found["/tmp"][0] == "ENOSPC" and 255 * 2**20 <= found["/tmp"][1] <= 256 * 2**20, found
    assert found[home][0] == "ENOSPC" and 63 * 2**20 <= found[home][1] <= 64 * 2**20, found
    # Nothing of it is in the container's layer on this machine's disk: only the engine's mount points.
    changes = layer_changes(worker.name)
    mount_points = {"/scratch", "/tmp", home, worker.folder, "/mnt/model"}
    assert all(any(point == path or point.startswith(path + "/") for point in mount_points) for path in changes), changes


def test_a_worker_process_speaks_the_protocol_inside(worker):
    process = Worker(worker)
    try:
        answer = process.call("installed")
    finally:
        process.close()
    assert answer["python"].startswith("3.10.") and answer["installed"]["mlserver"] == "1.5.0"


def test_limits_come_from_the_template_when_plausible(contract):
    memory, cpus, why = limits_for(contract)
    assert memory == DEFAULT_MEMORY and "default" in why  # the example declares no Limits
    declared = contract.properties.setdefault("Resources", {})
    try:
        declared["Limits"] = {"memory": "2Gi", "cpu": "1"}
        assert limits_for(contract)[:2] == (2 * 2**30, 1.0)
        declared["Limits"] = {"memory": "100Mi"}  # not plausible for a model server: the default
        assert limits_for(contract)[0] == DEFAULT_MEMORY
    finally:
        contract.properties.pop("Resources")


def test_the_home_mounted_over_is_the_images_own_unless_it_is_no_place_of_its_own():
    assert usable_home("/home/mlserver") == "/home/mlserver" and usable_home("/opt/mlserver") == "/opt/mlserver"
    for unusable in ("/", "", "relative/home", "/opt", "/home/../etc", "/usr/lib/app", "/tmp/home", "/scratch", "/mnt/x"):
        assert usable_home(unusable) == FALLBACK_HOME, unusable


def test_the_homes_tmpfs_belongs_to_the_images_user_on_either_engine():
    user = ImageUser("1000", 1000, 100, "/opt/mlserver")
    docker, podman = writable_places(user, podman=False), writable_places(user, podman=True)
    assert list(docker) == list(podman) == ["/tmp", "/opt/mlserver"]
    assert "size=256m" in docker["/tmp"] and "size=64m" in docker["/opt/mlserver"]
    assert "uid=1000,gid=100" in docker["/opt/mlserver"] and "uid=" not in podman["/opt/mlserver"]  # Podman refuses uid=
    assert podman["/opt/mlserver"].endswith(",U,notmpcopyup")


STARTER = r"""
import sys
from dialsgate.container.engine import Engine
from dialsgate.container.image import ensure_image
from dialsgate.container.worker import WorkerContainer
from dialsgate.contract.template import load_contract
contract = load_contract(sys.argv[1])
worker = WorkerContainer(contract, ensure_image(contract.image, log=lambda line: None))
print(worker.name, flush=True)
sys.stdin.read()
"""


def _exists(name: str) -> bool:
    return Engine.from_settings().container_exists(name)


def test_the_container_goes_when_the_gate_process_is_killed():
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(EXAMPLE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPOSITORY
    )
    name = starter.stdout.readline().strip()
    assert name.startswith("dialsgate-worker-") and _exists(name)
    os.kill(starter.pid, signal.SIGKILL)  # no finally, no atexit: only the closed pipe tells the container
    starter.wait()
    deadline, delay = time.monotonic() + 60, 0.1
    while _exists(name):
        assert time.monotonic() < deadline, f"{name} still exists 60 s after the process that started it was killed"
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
