"""The whole gate on a corpus of third-party-style DIALS model folders, each with its verdict.

Every folder of ``tests/gate/corpus`` (see its README) holds template.yaml, mlserver-model/ and
expected.json: ``verdict`` "pass" or "fail" and, for "fail", the rows that must not pass
(``must_fail``: a check name prefix and substrings of its reason). One case per folder (the id
is the folder name: ``pytest tests/gate/test_corpus.py -k oms_metadata_filter``). Each case
copies the folder to a fresh 0755 temporary folder (the serving container runs as another
uid), runs ``python -m dialsgate.gate --template <copy>/template.yaml --report <tmp>/report`` as
a subprocess (the gate finds reference_batch.npz beside the template itself) and reads
``<tmp>/report/verdict.json``, a list of {layer, check, result, reason}.

    DIALSGATE_CORPUS_LAYERS=fast pytest tests/gate/test_corpus.py   # quick local run

A layer subset never passes the gate, so with DIALSGATE_CORPUS_LAYERS set a pass-verdict folder
may show '(layer) not run' rows (and the gate exits 1), and a must_fail check that belongs to a
layer that did not run is skipped, not failed. Without it every layer runs and nothing is excused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
FOLDERS = sorted(path.parent.name for path in CORPUS.glob("*/expected.json"))
LAYERS_VARIABLE = "DIALSGATE_CORPUS_LAYERS"
GATE_TIMEOUT_SECONDS = 3600


def layer_subset() -> str | None:
    return os.environ.get(LAYERS_VARIABLE) or None


def describe(rows: list[dict]) -> str:
    """Every row with its full reason (for assertion messages)."""
    return "\n".join(
        f"  {row.get('layer', '?'):<7} {row.get('check', '?')}  [{row.get('result', '?')}]\n      {row.get('reason', '')}"
        for row in rows
    )


def is_layer_not_run(row: dict) -> bool:
    return row.get("check") == "(layer)" and row.get("result") == "not run"


@pytest.fixture
def scratch():
    folder = Path(tempfile.mkdtemp(prefix="dialsgate-corpus-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def copy_folder(name: str, scratch: Path) -> Path:
    copy = scratch / name
    shutil.copytree(CORPUS / name, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy


def run_gate(template: Path, report: Path) -> tuple[subprocess.CompletedProcess, list[dict] | None]:
    command = [sys.executable, "-m", "dialsgate.gate", "--template", str(template), "--report", str(report)]
    if layer_subset():
        command += ["--layers", layer_subset()]
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    finished = subprocess.run(
        command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=GATE_TIMEOUT_SECONDS
    )
    verdict_file = report / "verdict.json"
    rows = json.loads(verdict_file.read_text()) if verdict_file.is_file() else None
    return finished, rows


SERVED_NAME_PREFIX = "dialsgate-serve-"  # dialsgate.container names the containers it serves in


def containers_served(model_name: str, since: float, until: float) -> list[str]:
    """Names of the containers the engine created for ``model_name`` between two times (its event log)."""
    finished = subprocess.run(
        ["docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter", "type=container",
         "--filter", "event=create", "--format", "{{.Actor.Attributes.name}}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    prefix = f"{SERVED_NAME_PREFIX}{model_name}-"
    return [name for name in finished.stdout.split() if name.startswith(prefix)]


def model_name(template: Path) -> str:
    import yaml

    resources = yaml.safe_load(template.read_text())["Resources"]
    return next(iter(resources.values()))["Properties"]["Name"]


def output_tail(finished: subprocess.CompletedProcess, chars: int = 4000) -> str:
    return f"--- gate stdout (tail) ---\n{finished.stdout[-chars:]}\n--- gate stderr (tail) ---\n{finished.stderr[-chars:]}"


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in FOLDERS])
def test_gate_gives_the_expected_verdict(name, scratch):
    expected = json.loads((CORPUS / name / "expected.json").read_text())
    assert expected["verdict"] in ("pass", "fail"), f"{name}/expected.json: verdict {expected['verdict']!r}"
    marker = expected.get("must_not_create")
    if marker:
        Path(marker).unlink(missing_ok=True)
    copy = copy_folder(name, scratch)

    started = time.time()
    finished, rows = run_gate(copy / "template.yaml", scratch / "report")
    served = containers_served(model_name(copy / "template.yaml"), started, time.time() + 1)

    assert rows is not None, f"{name}: the gate wrote no verdict.json (exit {finished.returncode})\n{output_tail(finished)}"
    assert rows, f"{name}: verdict.json holds no row\n{output_tail(finished)}"
    table = describe(rows)
    if marker:
        assert not Path(marker).exists(), f"{name}: the gate ran the model file's payload ({marker} exists)\n{table}"
    if expected.get("must_not_serve"):
        # A payload inside a container would write its marker there, out of sight: so the file
        # must never reach one (nor a worker: the marker above is on this machine).
        assert not served, f"{name}: the gate served a model file it must load nowhere: containers {served}\n{table}"
    elif expected["verdict"] == "pass" and not layer_subset():
        assert served, f"{name}: no container served it (the served-container watch would see nothing)\n{table}"

    if expected["verdict"] == "pass":
        excused = is_layer_not_run if layer_subset() else (lambda row: False)
        not_passed = [row for row in rows if row.get("result") not in ("passed", "not applicable") and not excused(row)]
        assert not not_passed, f"{name}: expected to pass, these rows did not:\n{describe(not_passed)}\n\nall rows:\n{table}"
        if not layer_subset():
            assert finished.returncode == 0, (
                f"{name}: every row passed but the gate exited {finished.returncode}\n{output_tail(finished)}"
            )
        return

    assert finished.returncode != 0, f"{name}: expected to fail, the gate exited 0:\n{table}"
    assert any(row.get("result") != "passed" for row in rows), f"{name}: expected to fail, every row passed:\n{table}"
    unreachable = []
    for entry in expected["must_fail"]:
        check, words = entry["check"], entry.get("reason_contains", [])
        named = [row for row in rows if str(row.get("check", "")).startswith(check)]
        if not named and layer_subset():
            unreachable.append(check)
            continue
        assert named, f"{name}: no row of check {check!r} in the verdict:\n{table}"
        matching = [
            row for row in named if row.get("result") != "passed" and all(word in str(row.get("reason", "")) for word in words)
        ]
        assert matching, (
            f"{name}: no non-passed row of {check!r} whose reason contains all of {words}:\n{describe(named)}\n\nall rows:\n{table}"
        )
    for check in expected.get("must_not_run", []):
        rows_of = [row for row in rows if str(row.get("check", "")) == check]
        assert rows_of and all(row.get("result") == "not run" for row in rows_of), (
            f"{name}: {check} should be 'not run' behind the root failure:\n{describe(rows_of) or '(no row)'}\n\nall rows:\n{table}"
        )
    assert "serving_worker.py" not in table, f"{name}: a reason names dialsgate's own worker file:\n{table}"
    if unreachable:
        pytest.skip(f"{name}: {unreachable} not among the rows of {LAYERS_VARIABLE}={layer_subset()} (a layer that did not run)")
