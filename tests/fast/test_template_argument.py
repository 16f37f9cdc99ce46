"""A template ``dialsgate check`` cannot read is an argument error (exit 2, as argparse's) that
writes nothing: no report folder in the current directory, no verdict.json, no JUnit file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
ARGUMENT_ERROR = 2

#: Root reads any file: without these capabilities it is refused like anyone else (util-linux's setpriv).
DROP_READ_OVERRIDE = ["--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


def gate(cwd: Path, template: str, *prefix: str) -> subprocess.CompletedProcess:
    """``dialsgate check TEMPLATE`` run in ``cwd``, asking for every file it can write."""
    command = [*prefix, sys.executable, "-m", "dialsgate", "check", template, "--junit-xml", "junit.xml",
               "--verdict-json", "verdict.json", "--layers", "fast"]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=120)


def unreadable(folder: Path) -> tuple[str, tuple[str, ...]]:
    """A template file this user cannot open, and the prefix that makes it so for root."""
    path = folder / "template.yaml"
    path.write_text("Resources: {}\n")
    path.chmod(0)
    if os.geteuid() != 0:
        return path.name, ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no file is unreadable to this user")
    return path.name, (setpriv, *DROP_READ_OVERRIDE)


def missing(folder: Path) -> tuple[str, tuple[str, ...]]:
    return "nothere.yaml", ()


def a_folder(folder: Path) -> tuple[str, tuple[str, ...]]:
    (folder / "model").mkdir()
    return "model", ()


def a_fifo(folder: Path) -> tuple[str, tuple[str, ...]]:
    os.mkfifo(folder / "template.yaml")  # opening it to read would wait for a writer
    return "template.yaml", ()


def missing_default(folder: Path) -> tuple[str, tuple[str, ...]]:
    return "", ()  # no argument: ./template.yaml


@pytest.mark.parametrize(
    "make, says",
    [
        (missing, "nothere.yaml: No such file or directory"),
        (missing_default, "template.yaml: No such file or directory"),
        (a_folder, "model is a folder"),
        (unreadable, "template.yaml: Permission denied"),
        (a_fifo, "is a FIFO (named pipe), not a plain file"),
    ],
    ids=["missing", "missing-default", "a-folder", "unreadable", "a-fifo"],
)
def test_a_template_that_cannot_be_read_is_an_argument_error_that_writes_nothing(tmp_path, make, says):
    work = tmp_path / "cwd"
    work.mkdir()
    template, prefix = make(work)
    before = sorted(path.name for path in work.iterdir())
    finished = gate(work, template, *prefix) if template else gate(work, "--strict", *prefix)
    assert finished.returncode == ARGUMENT_ERROR, f"exit {finished.returncode}\n{finished.stdout[-2000:]}\n{finished.stderr}"
    assert "dialsgate check: error: template " in finished.stderr and says in finished.stderr, finished.stderr
    assert sorted(path.name for path in work.iterdir()) == before, "the gate wrote into the current directory"
    assert "GATE" not in finished.stdout and "===" not in finished.stdout, "no layer ran"


def test_a_readable_template_is_judged(tmp_path):
    """The same command on a template it can read runs the gate (exit 1 here, a verdict written):
    the argument check refuses only what it must."""
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "template.yaml").write_text("Resources: []\n")
    finished = gate(work, "template.yaml")
    assert finished.returncode == 1, f"exit {finished.returncode}\n{finished.stdout[-2000:]}\n{finished.stderr}"
    assert (work / "verdict.json").is_file() and "GATE FAILED" in finished.stdout


#: Root writes anywhere: without these capabilities a read-only folder is read-only to it too.
DROP_WRITE_OVERRIDE = ["--inh-caps=-dac_override", "--bounding-set=-dac_override"]


@pytest.mark.parametrize("option", ["report", "--junit-xml"])
def test_a_folder_that_cannot_be_written_is_an_argument_error_before_any_work(tmp_path, option):
    """Run in a folder this user cannot write (a shared checkout, a folder mounted read-only to
    judge it), the gate did all its work and then stopped on a traceback writing the report."""
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "template.yaml").write_text("Resources: []\n")
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: every folder is writable to this user")
        prefix = [setpriv, *DROP_WRITE_OVERRIDE]
    command = [*prefix, sys.executable, "-m", "dialsgate", "check", "template.yaml", "--layers", "fast"]
    if option == "--junit-xml":
        command += ["--report", str(tmp_path / "report"), "--junit-xml", str(work / "out" / "junit.xml")]
    work.chmod(0o555)
    try:
        environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "PYTHONDONTWRITEBYTECODE": "1"}
        finished = subprocess.run(command, cwd=work, env=environment, capture_output=True, text=True, timeout=120)
    finally:
        work.chmod(0o755)
    assert finished.returncode == ARGUMENT_ERROR, f"exit {finished.returncode}\n{finished.stdout[-2000:]}\n{finished.stderr}"
    said = "the report folder" if option == "report" else "the --junit-xml"
    assert f"dialsgate check: error: {said} " in finished.stderr and f"{work} is not writable" in finished.stderr, finished.stderr
    assert "===" not in finished.stdout and sorted(path.name for path in work.iterdir()) == ["template.yaml"]
    assert not (tmp_path / "report").exists()
