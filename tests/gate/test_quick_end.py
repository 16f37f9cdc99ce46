"""This repository's test runs end without the interpreter's teardown (``conftest.py``,
``_end_now``): with pytest's own exit status, after its summary and every exit function."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import atexit
    import os


    class SaysWhenDestroyed:
        def __del__(self, write=os.write):  # the module's names are gone by then
            write(1, b"TEARDOWN\\n")


    # Destroyed by the interpreter's teardown, when the modules are emptied.
    KEPT = SaysWhenDestroyed()


    def test_registers_an_exit_function():
        atexit.register(lambda: os.write(1, b"EXIT FUNCTION\\n"))


    def test_fails():
        assert 1 == 2
    """
)


def run_probe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    # The repository's conftest as a plugin of a session rooted outside the repository.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q", "-c", os.devnull,
         "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py"), *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def test_a_run_ends_with_pytests_status_after_its_summary_and_exit_functions_without_the_teardown(tmp_path):
    ended = run_probe(tmp_path)
    lines = ended.stdout.rstrip().splitlines()
    assert ended.returncode == 1, ended.stdout + ended.stderr
    assert lines[-2].startswith("1 failed, 1 passed") and lines[-1] == "EXIT FUNCTION", ended.stdout
    assert "TEARDOWN" not in ended.stdout
    none = run_probe(tmp_path, "-k", "no_such_test")
    assert none.returncode == 5, none.stdout + none.stderr


def test_the_probe_sees_a_teardown_where_there_is_one(tmp_path):
    """Without the repository's conftest the same run has its teardown: the probe can tell."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    ordinary = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-c", os.devnull, "--rootdir", str(tmp_path),
         str(tmp_path / "test_probe.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert ordinary.returncode == 1 and "TEARDOWN" in ordinary.stdout, ordinary.stdout + ordinary.stderr
