"""Engine commands started from a background thread while another thread changes the environment
(an import setting a variable, a test's monkeypatch) start: each child gets a copy of the
environment made by its starter (``dialsgate.spawning``), not the C library's array in motion.
Without the copy this failed about one start in two with ``[Errno 14] Bad address``."""

from __future__ import annotations

import os
import shutil
import sys
import threading

from dialsgate.container.engine import Engine
from dialsgate.spawning import child_environment

PREFIX = "DIALSGATE_TEST_CHURN_"
#: Without the copy about one start in two failed: 30 starts all passing by chance is about 1 in 10**7.
COMMANDS = 30


def test_engine_commands_start_while_the_environment_changes():
    engine = Engine(shutil.which("true"))
    failures: list[str] = []
    done = threading.Event()

    def start_commands() -> None:
        try:
            for _ in range(COMMANDS):
                try:
                    engine.call("version")
                except Exception as error:  # noqa: BLE001  (each failure is the finding)
                    failures.append(f"{type(error).__name__}: {error}")
        finally:
            done.set()

    starter = threading.Thread(target=start_commands)
    starter.start()
    changes = 0
    try:
        while not done.is_set():
            # Many variables set then removed: the C library moves its array as it grows.
            os.environ[f"{PREFIX}{changes % 1500}"] = "x" * (changes % 40)
            changes += 1
            if changes % 1500 == 0:
                for key in [key for key in os.environ if key.startswith(PREFIX)]:
                    del os.environ[key]
    finally:
        done.wait(60)
        starter.join(60)
        for key in [key for key in os.environ if key.startswith(PREFIX)]:
            del os.environ[key]
    assert changes > 200, f"the environment changed only {changes} times while the commands started"
    assert not failures, f"{len(failures)} of {COMMANDS} engine commands did not start; the first: {failures[0]}"


def test_the_copy_is_whole_while_another_thread_removes_variables():
    """The copy reads the names, then each value: a variable removed between the two (another
    thread's ``del os.environ[...]``) is left out, not a ``KeyError`` for the starter."""
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            for index in range(20):
                os.environ[f"{PREFIX}GONE_{index}"] = "x"
            for index in range(20):
                del os.environ[f"{PREFIX}GONE_{index}"]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads take turns inside the copy, not every 5 ms
    churner = threading.Thread(target=churn)
    churner.start()
    failures = []
    try:
        for _ in range(2000):
            try:
                copy = child_environment()
            except Exception as error:  # noqa: BLE001  (each failure is the finding)
                failures.append(f"{type(error).__name__}: {error}")
            else:
                assert copy["PATH"] == os.environ["PATH"]
    finally:
        stop.set()
        churner.join(60)
        sys.setswitchinterval(interval)
    assert not failures, f"{len(failures)} of 2000 copies failed; the first: {failures[0]}"
