"""This repository's test runs end without the interpreter's teardown (``conftest.py``,
``_end_now``): with pytest's own exit status, after its summary, and before any exit function
registered earlier (those are skipped, as the teardown is)."""

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
    import sys


    def test_registers_an_exit_function():
        atexit.register(lambda: sys.stdout.write("ORDINARY END\\n"))


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


def test_a_run_ends_with_pytests_status_after_its_summary_and_without_the_teardown(tmp_path):
    ended = run_probe(tmp_path)
    assert ended.returncode == 1, ended.stdout + ended.stderr
    assert ended.stdout.rstrip().splitlines()[-1].startswith("1 failed, 1 passed")
    assert "ORDINARY END" not in ended.stdout
    none = run_probe(tmp_path, "-k", "no_such_test")
    assert none.returncode == 5, none.stdout + none.stderr


def test_a_coverage_measurement_keeps_the_ordinary_end(tmp_path):
    (tmp_path / "coverage.py").write_text("")  # what the quick end looks for: a coverage module loaded
    ended = run_probe(tmp_path, "-p", "coverage")
    assert ended.returncode == 1 and "ORDINARY END" in ended.stdout, ended.stdout + ended.stderr
