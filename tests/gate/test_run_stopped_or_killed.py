"""A gate run stopped by SIGTERM (its CI job cancelled or timed out) removes the containers it
started: its served container, the folder's code running in it, stayed up until removed by hand
when the signal's default ended the process (tests/fast/test_stopped_by_signal.py: how the command
unwinds and what it says). Killed (SIGKILL: nothing of the gate runs), the served container stops
by its lifeline (``container.lifeline``) and the worker container by its keeper."""

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


def gate_run(template: Path, report: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    return subprocess.Popen(
        [sys.executable, "-m", "dialsgate", "check", str(template), "--report", str(report)],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(run: subprocess.Popen, events: list[dict], seen) -> None:
    deadline = time.monotonic() + 180
    while run.poll() is None and time.monotonic() < deadline and not any(seen(event) for event in events):
        time.sleep(0.05)
    assert run.poll() is None, f"the run ended before the event awaited: {events}"
    assert any(seen(event) for event in events), f"not seen in 180 s: {events}"


def stopped_once_served(tmp_path, prefix: str, start) -> tuple[subprocess.Popen, str, list[str], list[str]]:
    """``start(template)`` a run on a named copy of the plain folder, SIGTERM it once its served
    container exists; the run, its output, the containers it created and those left (removed
    here, not left to the machine when the test fails)."""
    template, name = copy_named(tmp_path, "sklearn_nmf_plain", prefix)
    engine = Engine.from_settings()
    ours = (f"{WORKER_NAME_PREFIX}{name}-", f"{SERVED_NAME_PREFIX}{name}-")
    with engine.watching("type=container", "event=create") as events:
        run = start(template)
        try:
            wait_for(run, events, lambda event: (event["name"] or "").startswith(ours[1]))
            run.send_signal(signal.SIGTERM)
            out, err = run.communicate(timeout=120)
        finally:
            run.kill()
            run.wait()
    created = [event["name"] for event in events if (event["name"] or "").startswith(ours)]
    left = [found for found in created if engine.container_exists(found)]
    for found in left:
        engine.remove(found)
    assert sorted(found.startswith(ours[1]) for found in created) == [False, True], created  # one worker, one served
    return run, out + (err or ""), created, left


def test_a_run_stopped_once_its_served_container_exists_removes_every_container_it_started(tmp_path):
    run, out, _, left = stopped_once_served(tmp_path, "stopped", lambda template: gate_run(template, tmp_path / "report"))
    assert (run.returncode, out.splitlines()[-1:]) == (128 + signal.SIGTERM, ["dialsgate: stopped by SIGTERM"]), out[-3000:]
    assert left == []


def test_a_pytest_session_stopped_once_its_served_container_exists_removes_every_container_it_started(tmp_path):
    """The plugin's session ended by SIGTERM's default left its served container (stopped by its
    lifeline, not removed); pytest now unwinds it as on Ctrl-C, through the subject's teardown."""

    def session(template):
        # From this checkout (the plugin named: the template's path would make its folder pytest's root).
        command = [sys.executable, "-m", "pytest", "-p", "dialsgate.pytest_plugin.plugin", "-p", "no:cacheprovider", "-q",
                   "--rootdir", str(REPOSITORY), "--dials-template", str(template)]  # fmt: skip
        environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
        return subprocess.Popen(
            command, cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    run, out, _, left = stopped_once_served(tmp_path, "pytest-stopped", session)
    assert run.returncode == pytest.ExitCode.INTERRUPTED and "stopped by SIGTERM" in out, out[-3000:]
    assert left == []


def test_a_run_killed_once_its_served_container_has_its_lifeline_leaves_no_container_running(tmp_path):
    template, name = copy_named(tmp_path, "sklearn_nmf_plain", "killed")
    engine = Engine.from_settings()
    ours = (f"{WORKER_NAME_PREFIX}{name}-", f"{SERVED_NAME_PREFIX}{name}-")
    with engine.watching("type=container") as events:
        run = gate_run(template, tmp_path / "report")
        try:
            # Docker names the exec's command in the event's action ("exec_start: sh -c read -r _; ...").
            wait_for(
                run, events, lambda event: (event["name"] or "").startswith(ours[1]) and "read -r _" in (event["action"] or "")
            )
        finally:
            run.kill()
            run.wait()
    created = sorted({event["name"] for event in events if (event["name"] or "").startswith(ours)})
    deadline = time.monotonic() + 60
    while (running := [found for found in created if _running(engine, found)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for found in created:  # stopped ones are left by a killed run: removed here, not left to the machine
        if engine.container_exists(found):
            engine.remove(found)
    assert len(created) == 2, created
    assert running == []


def _running(engine: Engine, name: str) -> bool:
    found = engine.container_inspect(name)
    return bool(found and (found.get("State") or {}).get("Running"))
