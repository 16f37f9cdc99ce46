"""The server layer's container, as the engine reports it while it serves: no network (requests
reach it through the engine), the build folder read-only, the image's user; and the model code
it serves cannot reach this machine."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import requests

from dialsgate.container.engine import NETWORK_ENV
from dialsgate.container.serve import serve_contract
from dialsgate.contract.template import load_contract

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nmf1d" / "template.yaml"
REACH = "import socket, sys\ntry:\n    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2)\n    print('connected')\nexcept OSError as error:\n    print(type(error).__name__)"


def test_the_served_container_has_no_network_and_answers_through_the_engine(monkeypatch):
    monkeypatch.delenv(NETWORK_ENV, raising=False)  # the default
    contract = load_contract(EXAMPLE)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        with serve_contract(contract, log=lambda line: None) as served:
            name = served.container.get_wrapped_container().name
            found = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout)[0]
            reached = subprocess.run(
                ["docker", "exec", name, "python", "-I", "-c", REACH, str(listener.getsockname()[1])],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            uid = subprocess.run(["docker", "exec", name, "id", "-u"], capture_output=True, text=True, check=True).stdout.strip()
            ready = requests.get(f"{served.url}/v2/models/{contract.name}/ready", timeout=30)
    finally:
        listener.close()
    assert served.network_mode == "none" and found["HostConfig"]["NetworkMode"] == "none"
    assert [mount["RW"] for mount in found["Mounts"]] == [False] and found["Mounts"][0]["Destination"] == f"/mnt/{contract.name}"
    assert uid == "1000"  # the image's own user
    assert reached != "connected", reached
    assert ready.status_code == 200
