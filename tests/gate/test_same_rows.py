"""`pytest --dials-template` and `dialsgate check` are two doors to the same checks: on one
folder they give the same rows with the same results (the pytest adapter is thin)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gate

REPOSITORY = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"


def test_pytest_and_dialsgate_check_give_the_same_rows(tmp_path):
    copy = tmp_path / "folder"
    shutil.copytree(CORPUS / "sklearn_nmf_plain", copy)
    for path in [tmp_path, copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "PYTHONDONTWRITEBYTECODE": "1"}
    gate = subprocess.run(
        [sys.executable, "-m", "dialsgate", "check", str(copy / "template.yaml"), "--report", str(tmp_path / "report")],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert gate.returncode == 0, gate.stdout[-3000:]
    # As a model author runs it outside this repository: no conftest of ours (the layer modules
    # live under this checkout here, in site-packages when installed).
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    summary = tmp_path / "summary.json"
    plugin = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest", "-c", str(tmp_path / "pytest.ini"),
         "--rootdir", str(tmp_path), "-p", "dialsgate.pytest_plugin.plugin", "--dials-template", str(copy / "template.yaml"),
         "--gate-summary", str(summary)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert plugin.returncode == 0, plugin.stdout[-3000:]
    rows = json.loads((tmp_path / "report" / "verdict.json").read_text())["rows"]
    by_gate = {(row["check"], row["result"]) for row in rows}
    results = json.loads(summary.read_text())["results"]
    by_pytest = {(row["check"], row["outcome"]) for row in results}
    # Why each differing row of pytest's is what it is: the first few reasons, roots included.
    why = [
        f"{row['check']}: {row['outcome']}: {str(row['reason'])[:300]}"
        for row in results
        if (row["check"], row["outcome"]) not in by_gate
    ]
    assert by_pytest == by_gate, (sorted(by_gate - by_pytest), sorted(by_pytest - by_gate), why[:5])
    assert {row["layer"] for row in rows} == {"fast", "parity", "server"}
