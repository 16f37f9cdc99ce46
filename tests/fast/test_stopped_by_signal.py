"""``dialsgate check`` stopped by a signal unwinds: SIGINT (Ctrl-C), SIGTERM (a CI job cancelled or
timed out) and SIGHUP (its terminal closed) raise where the run is, so its ``with`` blocks remove
the containers it started (tests/gate/test_run_stopped_or_killed.py: a real run and its containers);
the command then says in one line what stopped it, no traceback, and exits 128 + the signal's
number. Ended by SIGTERM's default, a run left its served container running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

#: ``entry`` around a run that waits, as a run waits for its containers: in bounded waits, since
#: Python runs a signal's handler between two steps of the main thread, and a signal landing
#: after the last step before a blocking call (here, after "running" is written) waits for that
#: call to end (one ``sleep(60)``: this test hung for its 30 s once in about 50 runs of `-k fast`).
#: Its ``finally`` stands for the run's ``with`` blocks. Each signal starts at its terminal default
#: (a shell's background job would ignore SIGINT, nohup SIGHUP), but ``IGNORED`` is left ignored.
RUN = textwrap.dedent(
    """
    import os, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN if name == os.environ.get("IGNORED") else signal.SIG_DFL)
    from dialsgate.gate import cli

    def main(argv=None):
        try:
            print("running", flush=True)
            for _ in range(600):
                time.sleep(0.1)
        finally:
            print("unwound", flush=True)
        return 0

    cli.main = main
    cli.entry([])
    """
)


def run_stopped_by(number: int, ignored: str = "") -> tuple[int, str, str]:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "IGNORED": ignored}
    run = subprocess.Popen(
        [sys.executable, "-c", RUN], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert run.stdout.readline() == "running\n"
        run.send_signal(number)
        out, err = run.communicate(timeout=30)
    finally:
        run.kill()
        run.wait()
    return run.returncode, out, err


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda number: number.name)
def test_a_run_stopped_by_a_signal_unwinds_and_says_so_in_one_line(number):
    code, out, err = run_stopped_by(number)
    assert (code, out, err) == (128 + number, "unwound\n", f"\ndialsgate: stopped by {number.name}\n")


def test_a_signal_ignored_by_the_gates_starter_stays_ignored():
    """nohup: SIGHUP ignored, the run goes on to its end."""
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "IGNORED": "SIGHUP"}
    run = subprocess.Popen(
        [sys.executable, "-c", RUN.replace("time.sleep(0.1)", "os.kill(os.getpid(), signal.SIGHUP)")],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, err = run.communicate(timeout=30)
    assert (run.returncode, out, err) == (0, "running\nunwound\n", "")
