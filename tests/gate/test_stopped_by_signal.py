"""A gate run stopped by SIGTERM (its CI job cancelled or timed out) removes the containers it
started: its served container, the folder's code running in it, stayed up until removed by hand
when the signal's default ended the process (tests/fast/test_stopped_by_signal.py: how the command
unwinds and what it says)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from named_copies import copy_named

from dialsgate.container.engine import Engine
from dialsgate.container.serve import SERVED_NAME_PREFIX
from dialsgate.container.worker import WORKER_NAME_PREFIX

pytestmark = pytest.mark.gate

REPOSITORY = Path(__file__).resolve().parents[2]


def test_a_run_stopped_once_its_served_container_exists_removes_every_container_it_started(tmp_path):
    template, name = copy_named(tmp_path, "sklearn_nmf_plain", "stopped")
    engine = Engine.from_settings()
    ours = (f"{WORKER_NAME_PREFIX}{name}-", f"{SERVED_NAME_PREFIX}{name}-")
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    with engine.watching("type=container", "event=create") as events:
        run = subprocess.Popen(
            [sys.executable, "-m", "dialsgate", "check", str(template), "--report", str(tmp_path / "report")],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while run.poll() is None and time.monotonic() < deadline:
                if any((event["name"] or "").startswith(ours[1]) for event in events):
                    break
                time.sleep(0.05)
            assert run.poll() is None, "the run ended before its served container was created"
            run.send_signal(signal.SIGTERM)
            out, err = run.communicate(timeout=120)
        finally:
            run.kill()
            run.wait()
    created = [event["name"] for event in events if (event["name"] or "").startswith(ours)]
    left = [found for found in created if engine.container_exists(found)]
    for found in left:  # not left to the machine when this test fails
        engine.remove(found)
    assert sorted(found.startswith(ours[1]) for found in created) == [False, True], created  # one worker, one served
    assert (run.returncode, err.splitlines()[-1:]) == (128 + signal.SIGTERM, ["dialsgate: stopped by SIGTERM"]), err[-3000:]
    assert left == []
