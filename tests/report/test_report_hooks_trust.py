"""The picture hooks a repository's dialsgate.toml names are that repository's code, run on this
machine: `dialsgate check` runs them only with --run-report-hooks, so gating someone else's
repository runs none of its code outside the sandbox."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "nmf1d"
HOOK = """
from pathlib import Path
Path(__file__).with_name("hook-module-ran").write_text("imported on the gate's machine")

def draw(contract, answers, indices, out_dir):
    return "no pictures"
"""


def _gate(copy: Path, report: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dialsgate", "check", str(copy / "template.yaml"), "--layers", "fast", "--report", str(report), *options],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_the_repositorys_hooks_run_only_when_asked(tmp_path):
    copy = tmp_path / "someone-elses"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (copy / "pictures.py").write_text(HOOK)
    (copy / "dialsgate.toml").write_text('report_pictures = ["pictures.py:draw"]\n')
    marker = copy / "hook-module-ran"

    refused = _gate(copy, tmp_path / "report-refused")
    assert (tmp_path / "report-refused" / "index.html").is_file(), refused.stdout[-3000:]
    assert not marker.exists(), "the repository's hook ran without --run-report-hooks"
    assert "not run: --run-report-hooks runs them" in refused.stdout, refused.stdout[-3000:]

    asked = _gate(copy, tmp_path / "report-asked", "--run-report-hooks")
    assert marker.exists(), asked.stdout[-3000:]
