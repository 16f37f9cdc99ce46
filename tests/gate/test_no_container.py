"""``--no-container``: on a machine without a container engine, model code is judged on the host
(a venv of the image's pins under a host Python 3.10). It works, and it cannot pass: the verdict
says so in its first line and its first row."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "nmf1d"


def test_no_container_judges_the_example_on_the_host_and_cannot_pass(tmp_path):
    copy = tmp_path / "nmf1d"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    finished = subprocess.run(
        [sys.executable, "-m", "dialsgate", "check", str(copy / "template.yaml"), "--no-container", "--layers", "fast,parity",
         "--report", str(tmp_path / "report")],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    document = json.loads((tmp_path / "report" / "verdict.json").read_text())
    rows = document["rows"]
    assert finished.returncode == 1 and document["provenance"]["model_code"]["where"] == "host"
    assert rows[0]["check"] == "model_code_in_serving_image" and rows[0]["result"] == "failed", rows[0]
    verdict = finished.stdout[finished.stdout.rindex("=== gate: resource ChargeNMF1D: layer parity") :]
    assert verdict.splitlines()[1].startswith("MODEL CODE WAS JUDGED OUTSIDE THE SERVING IMAGE"), verdict[:500]
    # Everything else that ran passed: the host runtime answers as the worker container does.
    others = [row for row in rows[1:] if row["result"] not in ("passed", "not applicable") and row["check"] != "(layer)"]
    assert not others, others
    assert [row["layer"] for row in rows if row["check"] == "(layer)"] == ["server"]
