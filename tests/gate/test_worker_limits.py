"""A handler that never loads, in the worker container of the serving image: the call stops at
its timeout naming it, and the worker process is killed inside the container (found by its id),
not only the ``docker exec`` client on this machine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dialsgate.container.image import ensure_image
from dialsgate.container.worker import WorkerContainer
from dialsgate.contract.template import load_contract
from dialsgate.transports.worker import WorkerHandler, WorkerLimitReached

CORPUS = Path(__file__).resolve().parent / "corpus"

LIST_BY_ID = (
    "import os, sys\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        line = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
    "    except OSError:\n"
    "        continue\n"
    "    if sys.argv[1].encode() in line and int(pid) != os.getpid():\n"
    "        print(pid)\n"
)


def test_a_handler_that_never_loads_is_stopped_inside_the_container(tmp_path, monkeypatch):
    tmp_path.chmod(0o755)
    folder = tmp_path / "handler_never_answers"
    shutil.copytree(CORPUS / "handler_never_answers", folder)
    contract = load_contract(folder / "template.yaml")
    runtime = WorkerContainer(contract, ensure_image(contract.image, log=lambda line: None))
    monkeypatch.setenv("DIALSGATE_WORKER_LOAD_TIMEOUT", "8")
    try:
        with pytest.raises(WorkerLimitReached, match=r"did not load within 8 s") as raised:
            WorkerHandler(contract, runtime)
        assert "DIALSGATE_WORKER_LOAD_TIMEOUT" in str(raised.value)
        # Every worker process ever started in this container carries an id on its command line.
        listed = runtime.exec(["python", "-I", "-c", LIST_BY_ID, "--dialsgate-worker-id="], timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.decode().split() == [], "a worker process kept running in the container after its timeout"
    finally:
        runtime.close()
