"""The server layer's container, as the engine reports it while it serves: no network (requests
reach it through the engine), the build folder read-only, the image's user, confined as the
worker container is (no capabilities, no new privileges, memory, CPU and process limits, a
read-only root with /tmp and the user's home small and in memory); and the model code it serves
can neither reach this machine nor write to its disk."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import requests
from sandbox_probes import WRITES

from dialsgate.container.engine import NETWORK_ENV, Engine
from dialsgate.container.serve import serve_contract
from dialsgate.contract.template import load_contract

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nmf1d" / "template.yaml"
REACH = "import socket, sys\ntry:\n    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2)\n    print('connected')\nexcept OSError as error:\n    print(type(error).__name__)"


def _exec(name: str, *command: str) -> str:
    run = Engine.from_settings().exec(name, list(command), timeout=300)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    return run.stdout.decode().strip()


def test_the_served_container_is_confined_and_answers_through_the_engine(monkeypatch):
    monkeypatch.delenv(NETWORK_ENV, raising=False)  # the default
    contract = load_contract(EXAMPLE)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        with serve_contract(contract, log=lambda line: None) as served:
            engine, name = Engine.from_settings(), served.name
            found = engine.container_inspect(name)
            reached = _exec(name, "python", "-I", "-c", REACH, str(listener.getsockname()[1]))
            uid = _exec(name, "id", "-u")
            working_dir = _exec(name, "pwd")
            home = _exec(name, "getent", "passwd", "1000").split(":")[5]
            places = {
                "write": ["/opt/mlserver/written", "/etc/written", "/written", "/tmp/written", f"{home}/written"],
                "fill": ["/tmp", home],
            }
            writes = json.loads(_exec(name, "python", "-I", "-c", WRITES, json.dumps(places)))
            changes = engine.diff(name)
            ready = requests.get(f"{served.url}/v2/models/{contract.name}/ready", timeout=30)
    finally:
        listener.close()
    host = found["HostConfig"]
    assert served.network_mode == "none" and host["NetworkMode"] == "none"
    assert [mount["RW"] for mount in found["Mounts"]] == [False] and found["Mounts"][0]["Destination"] == f"/mnt/{contract.name}"
    assert uid == "1000"  # the image's own user
    assert working_dir == home  # as in the real image (/opt/mlserver): a write beside it works, as in DIALS
    assert reached != "connected", reached
    assert ready.status_code == 200  # MLServer starts and serves with a read-only root
    # Confined as the worker: the example declares no Limits (4 GiB, 2 CPUs at most, by default).
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == 4 * 2**30 and host["MemorySwap"] == 4 * 2**30
    assert host["NanoCpus"] == int(min(2, os.cpu_count()) * 1e9) and host["PidsLimit"] == 4096
    assert host["ReadonlyRootfs"] is True and sorted(host["Tmpfs"]) == sorted(["/tmp", home])
    assert [writes[path] for path in places["write"][:3]] == ["EROFS"] * 3, writes
    assert [writes[path] for path in places["write"][3:]] == ["written"] * 2, writes
    # Full at its size (MLServer's metrics files take a little of /tmp), far below the memory limit.
    assert writes["/tmp"][0] == "ENOSPC" and 250 * 2**20 <= writes["/tmp"][1] <= 256 * 2**20, writes
    assert writes[home][0] == "ENOSPC" and 63 * 2**20 <= writes[home][1] <= 64 * 2**20, writes
    # Nothing reached the container's layer on this machine's disk: only the engine's mount points.
    mount_points = (f"/mnt/{contract.name}", "/tmp", home)
    assert all(any(point == path or point.startswith(path + "/") for point in mount_points) for path in changes), changes


def test_a_start_stopped_by_an_unforeseen_error_leaves_no_container(monkeypatch):
    # A served container that exited once raised http.client.BadStatusLine in the readiness wait,
    # an error start() did not clean up after: the container stayed.
    from testcontainers.core.waiting_utils import WaitStrategy

    from dialsgate.container import serve

    names = []

    class Unforeseen(WaitStrategy):
        def wait_until_ready(self, container) -> None:
            raise RuntimeError("unforeseen")

    def strategy(url, model_name, timeout, name, engine, relay=None, on_start=None):
        names.append(name)
        return Unforeseen()

    monkeypatch.setattr(serve, "model_ready_wait_strategy", strategy)
    contract = load_contract(EXAMPLE)
    try:
        with serve_contract(contract, log=lambda line: None):
            raise AssertionError("served although its start failed")
    except RuntimeError as error:
        assert str(error) == "unforeseen"
    assert len(names) == 1 and not Engine.from_settings().container_exists(names[0]), names
