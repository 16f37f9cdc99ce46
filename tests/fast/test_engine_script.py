""".ci/docker-engine.sh keeps its state per checkout: `stop` from one checkout never stops another's engine.

No engine is started or stopped here: each "engine" is a copy of ``sleep`` named ``dockerd``
(the script accepts a pid file only when the process's name is ``dockerd``), started by this
test and always killed by it. Two copies of the script in two temporary "checkouts" stand for
two worktrees.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = REPOSITORY / ".ci" / "docker-engine.sh"


def checkout(root: Path, name: str) -> Path:
    """A minimal checkout: just .ci/docker-engine.sh."""
    folder = root / name / ".ci"
    folder.mkdir(parents=True)
    shutil.copy2(SCRIPT, folder / "docker-engine.sh")
    return folder / "docker-engine.sh"


def run(script: Path, *args: str, state: Path | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "DOCKER_ENGINE_STATE"}
    if state is not None:
        environment["DOCKER_ENGINE_STATE"] = str(state)
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=environment, timeout=60)


@dataclass
class FakeEngine:
    pid: int
    binary: Path

    def alive(self) -> bool:
        """Running and still our copy of sleep (not a reused pid)."""
        try:
            return (
                Path(f"/proc/{self.pid}/exe").resolve() == self.binary.resolve()
                and "(Z)" not in Path(f"/proc/{self.pid}/stat").read_text()
            )
        except OSError:
            return False


@pytest.fixture
def fake_engine(tmp_path):
    """A process named ``dockerd`` (a copy of sleep), detached like the real one (not our child,
    so its exit is reaped by init as dockerd's is), killed at the end if still running."""
    binary = tmp_path / "bin" / "dockerd"
    binary.parent.mkdir()
    shutil.copy2(shutil.which("sleep"), binary)
    launched = subprocess.run(
        ["bash", "-c", 'setsid "$0" 300 </dev/null >/dev/null 2>&1 & echo $!', str(binary)],
        capture_output=True,
        text=True,
        check=True,
    )
    engine = FakeEngine(int(launched.stdout.strip()), binary)
    try:
        deadline = time.monotonic() + 5
        while not engine.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert Path(f"/proc/{engine.pid}/comm").read_text().strip() == "dockerd"
        yield engine
    finally:
        if engine.alive():
            os.kill(engine.pid, signal.SIGKILL)


def wait_gone(engine: FakeEngine, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while engine.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not engine.alive()


def state_dir(script: Path) -> Path:
    result = run(script, "state-dir")
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def test_default_state_dirs_differ_per_checkout(tmp_path):
    first, second = checkout(tmp_path, "one"), checkout(tmp_path, "two")
    assert state_dir(first) != state_dir(second)
    assert state_dir(first) == state_dir(first), "the same checkout must always find its own state"
    assert run(first, "state-dir", state=tmp_path / "given").stdout.strip() == str(tmp_path / "given")


def test_stop_from_another_checkout_leaves_the_engine_running(tmp_path, fake_engine):
    starter, other = checkout(tmp_path, "starter"), checkout(tmp_path, "other")
    starter_state = state_dir(starter)
    other_state = state_dir(other)
    created = [path for path in (starter_state, other_state) if not path.exists()]
    try:
        starter_state.mkdir(parents=True, exist_ok=True)
        (starter_state / "dockerd.pid").write_text(f"{fake_engine.pid}\n")

        stopped = run(other, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "nothing to stop" in stopped.stderr, stopped.stderr
        assert fake_engine.alive(), "stop from another checkout stopped the engine"
        assert (starter_state / "dockerd.pid").is_file()

        # The checkout that started it does stop it (the pid file is honoured where it belongs).
        stopped = run(starter, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert wait_gone(fake_engine)
        assert not (starter_state / "dockerd.pid").exists()
    finally:
        for path in created:
            shutil.rmtree(path, ignore_errors=True)


def test_pid_file_of_a_process_not_named_dockerd_is_never_acted_on(tmp_path):
    """A stale pid file (the pid reused by another program) is removed, the program left alone."""
    script = checkout(tmp_path, "stale")
    state = tmp_path / "state"
    state.mkdir()
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        (state / "dockerd.pid").write_text(f"{bystander.pid}\n")
        result = run(script, "stop", state=state)
        assert result.returncode == 0, result.stderr
        assert bystander.poll() is None
        assert not (state / "dockerd.pid").exists()
    finally:
        bystander.kill()
        bystander.wait(timeout=10)
