"""dialsgate as a DIALS model author gets it: `pip install <this repository>` into a fresh venv,
then `dialsgate check` and `pytest --dials-template` on a copy of examples/nmf1d in a temporary
folder, with no file of this repository around (no conftest, no tox.ini).

The unbroken copy passes every layer; a copy whose handler answers Score as FP64 (the seed's
Metric defect) fails, naming check_output_matches_signature[Score], both ways. Every command
runs with no Python of the serving image's version (3.10) anywhere it could be found
(``installed_tool.tool_environment``): the tool needs only its own Python and an engine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from installed_tool import REPOSITORY, tool_environment
from installed_tool import run_installed as _run

EXAMPLE = REPOSITORY / "examples" / "nmf1d"
BROKEN_CHECK = "check_output_matches_signature[Score]"


def _model_copy(scratch: Path, name: str, broken: bool) -> Path:
    copy = scratch / name
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    if broken:
        app = copy / "mlserver-model" / "app.py"
        text = (
            app.read_text()
            .replace('SCORE_DATATYPE = "FP32"', 'SCORE_DATATYPE = "FP64"')
            .replace("score.astype(np.float32).tolist()", "score.astype(np.float64).tolist()")
        )
        app.write_text(text)
    return copy


def _verdict(report: Path) -> list[dict]:
    return json.loads((report / "verdict.json").read_text())["rows"]


def test_dialsgate_check_passes_a_good_folder(venv, scratch):
    model = _model_copy(scratch, "good", broken=False)
    run = _run([str(venv / "bin" / "dialsgate"), "check", "template.yaml", "--report", str(scratch / "good-report")], cwd=model)
    rows = _verdict(scratch / "good-report")
    failed = [row for row in rows if row["result"] not in ("passed", "not applicable")]
    assert run.returncode == 0 and not failed, f"{failed}\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert {row["layer"] for row in rows} == {"fast", "parity", "server"}
    assert "GATE PASSED" in run.stdout


def test_dialsgate_check_fails_a_broken_folder_naming_the_check(venv, scratch):
    model = _model_copy(scratch, "broken", broken=True)
    run = _run(
        [
            str(venv / "bin" / "dialsgate"),
            "check",
            "template.yaml",
            "--layers",
            "fast",
            "--report",
            str(scratch / "broken-report"),
        ],
        cwd=model,
    )
    assert run.returncode == 1, run.stdout[-3000:]
    row = next(row for row in _verdict(scratch / "broken-report") if row["check"] == BROKEN_CHECK and row["layer"] == "fast")
    assert row["result"] == "failed" and "FP64" in row["reason"], row


def test_pytest_plugin_passes_a_good_folder(venv, scratch):
    model = _model_copy(scratch, "good-pytest", broken=False)
    run = _run(
        [
            str(venv / "bin" / "pytest"),
            "--dials-template",
            "template.yaml",
            "--dials-layers",
            "fast,parity",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=model,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    assert " passed" in run.stdout and "check_output_matches_signature[Score]" not in run.stdout


def test_pytest_plugin_fails_a_broken_folder_naming_the_check(venv, scratch):
    model = _model_copy(scratch, "broken-pytest", broken=True)
    run = _run(
        [
            str(venv / "bin" / "pytest"),
            "--dials-template",
            "template.yaml",
            "--dials-layers",
            "fast,parity",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=model,
    )
    assert run.returncode == 1, run.stdout[-4000:]
    assert "FAILED " in run.stdout and BROKEN_CHECK in run.stdout, run.stdout[-4000:]


GITLAB_JOB = REPOSITORY / "docs" / "ci" / "dialsgate.gitlab-ci.yml"


def test_gitlab_ci_job_commands_pass_the_example(venv, scratch):
    """The documented GitLab job, run as GitLab would run its commands (bash, the job's variables)."""
    import junitparser
    import yaml

    job = yaml.safe_load(GITLAB_JOB.read_text())["dialsgate"]
    kept = job["artifacts"]["paths"]
    junit = job["artifacts"]["reports"]["junit"]
    assert job["artifacts"]["when"] == "always" and any(junit.startswith(path.rstrip("/")) for path in kept), job["artifacts"]
    copy = _model_copy(scratch, "gitlab-job", broken=False)
    source = scratch / "source"  # the read-only copy of this repository the venv fixture made
    variables = {**{key: str(value) for key, value in job["variables"].items()}, "DIALSGATE_SOURCE": str(source)}
    script = "set -e\n" + "\n".join([*job["before_script"], *job["script"]])
    finished = subprocess.run(
        ["bash", "-c", script], cwd=copy, env={**tool_environment(), **variables}, capture_output=True, text=True, timeout=3600
    )
    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-3000:]
    report = copy / variables["DIALSGATE_REPORT"]
    rows = json.loads((report / "verdict.json").read_text())["rows"]
    xml = junitparser.JUnitXml.fromfile(str(copy / junit))
    cases = [case for suite in xml for case in suite]
    assert len(cases) == len(rows) and all(case.is_passed or case.is_skipped for case in cases)
    assert (report / "index.html").is_file()
