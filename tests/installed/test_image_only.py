"""The installed tool judges model code only inside the serving image, on a machine with no Python
of the image's version (``installed_tool``): our two deployments pass; a folder whose handler
writes a cache next to itself fails in the fast layer naming the file; a folder whose import
writes into the home directory passes, and the file lands in the containers, never here; and
``--no-container`` says in its first line that the verdict cannot pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from installed_tool import HOME, REPOSITORY
from installed_tool import run_installed as _run

CORPUS = REPOSITORY / "tests" / "gate" / "corpus"
WORKER_LINE = "model code ran in a worker container of the image: network none"


def _gate(venv: Path, template: Path, report: Path, *options: str):
    run = _run([str(venv / "bin" / "dialsgate"), "check", str(template), "--report", str(report), *options], cwd=report.parent)
    document = json.loads((report / "verdict.json").read_text())
    return run, document["provenance"], document["rows"]


def _corpus_copy(scratch: Path, name: str) -> Path:
    copy = scratch / name
    shutil.copytree(CORPUS / name, copy, ignore=shutil.ignore_patterns("__pycache__", "expected.json"))
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy / "template.yaml"


def _after_progress(stdout: str) -> str:
    """What the gate printed from its last progress line on (``=== gate: resource R: layer L ...``)."""
    return stdout[stdout.rindex("=== gate: ") :]


def _not_passing(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["result"] not in ("passed", "not applicable")]


@pytest.mark.parametrize("template", ["template.yaml", "template-2025f.yaml"])
def test_our_deployments_pass_with_model_code_in_the_image(venv, scratch, template):
    run, provenance, rows = _gate(venv, REPOSITORY / template, scratch / f"report-{Path(template).stem}")
    assert run.returncode == 0 and not _not_passing(rows), f"{_not_passing(rows)}\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert provenance["model_code"]["where"] == "worker container" and provenance["model_code"]["network"] == "none"
    verdict = _after_progress(run.stdout)
    assert verdict.splitlines()[1].startswith(WORKER_LINE), verdict[:600]
    assert verdict.splitlines()[2].startswith("the server layer's container had no network either"), verdict[:600]
    assert provenance["server_network"] == "none"


def test_a_handler_writing_next_to_itself_fails_naming_the_file(venv, scratch):
    run, _, rows = _gate(venv, _corpus_copy(scratch, "handler_caches_beside_itself"), scratch / "report-cache-beside")
    assert run.returncode == 1
    failed = _not_passing(rows)
    root = next(row for row in failed if row["check"] == "check_handler_loads")
    assert root["layer"] == "fast" and root["result"] == "failed", root
    assert "mlserver-model/basis_cache.npy" in root["reason"] and "read-only in DIALS" in root["reason"], root["reason"]
    assert all(row is root or row["result"] == "not run" for row in failed), failed


def test_a_handler_writing_into_home_passes_and_the_file_stays_in_the_containers(venv, scratch):
    record = Path(".corpus-nmf-home-writer") / "last_start.txt"
    for home in (HOME, Path.home()):
        (home / record).unlink(missing_ok=True)
    run, provenance, rows = _gate(venv, _corpus_copy(scratch, "handler_import_writes_home"), scratch / "report-home")
    assert run.returncode == 0 and not _not_passing(rows), f"{_not_passing(rows)}\n{run.stdout[-3000:]}"
    assert provenance["model_code"]["where"] == "worker container"
    assert not (HOME / record).exists() and not (Path.home() / record).exists()


def test_no_container_judges_on_this_machine_and_cannot_pass(venv, scratch):
    run, provenance, rows = _gate(
        venv,
        REPOSITORY / "examples" / "nmf1d" / "template.yaml",
        scratch / "report-no-container",
        "--no-container",
        "--layers",
        "fast",
    )
    assert run.returncode == 1 and provenance["model_code"]["where"] == "host"
    verdict = _after_progress(run.stdout)
    assert verdict.splitlines()[1].startswith("MODEL CODE WAS JUDGED OUTSIDE THE SERVING IMAGE (--no-container)"), verdict[:600]
    assert rows[0]["check"] == "model_code_in_serving_image" and rows[0]["result"] == "failed"
    # Without a Python 3.10 on this machine the fallback cannot even build its environment: it says how to get one.
    loads = next(row for row in rows if row["check"] == "check_handler_loads")
    assert "no Python 3.10 interpreter found" in loads["reason"], loads
