"""The whole gate on a corpus of third-party-style DIALS model folders, each with its verdict.

Every folder of ``tests/gate/corpus`` (see its README) holds template.yaml, mlserver-model/ and
expected.json: ``verdict`` "pass" or "fail"; ``must_fail``, the rows that must fail (a check name
prefix, substrings of its reason, and substrings of that reason in one line as the verdict's
screen shows it); ``must_advise``, the check name prefixes whose rows must be
advice. Every row of the verdict is accounted for: it fails only where ``must_fail`` says, is
advice only where ``must_advise`` says, is ``not run`` only behind a root row that failed, and
otherwise passed or is not applicable (so a false alarm shows in a failing folder too).
``probe``: a file a link of the folder points at; a fresh secret is written there first, and it
must appear in nothing the gate writes or prints, the folder's links unchanged. ``env``: the
gate's limits for the folder (``DIALSGATE_WORKER_LOAD_TIMEOUT``, ...). ``args``: more options of
``dialsgate check`` (``["--package", "<name>.zip"]``), each argument naming a file of the folder
taken relative to its copy. One case
per folder (the id is the folder name: ``pytest tests/gate/test_corpus.py -k oms_metadata_filter``).
Each case copies the folder to a fresh 0755 temporary folder (the serving container runs as
another uid), runs ``python -m dialsgate check <copy>/template.yaml --report <tmp>/report``
as a subprocess (the gate finds reference_batch.npz beside the template itself) and reads
``<tmp>/report/verdict.json`` ({provenance, rows: [{layer, check, result, reason}]}).
``DIALSGATE_CORPUS_KEEP=<folder>`` keeps each folder's verdict.json there (<name>.json).

    DIALSGATE_CORPUS_LAYERS=fast pytest tests/gate/test_corpus.py   # quick local run
    pytest tests/gate/test_corpus.py -k NAME                                # one folder, every layer

A layer subset never passes the gate, so with DIALSGATE_CORPUS_LAYERS set a pass-verdict folder
may show '(layer) not run' rows (and the gate exits 1), and a must_fail check that belongs to a
layer that did not run is skipped, not failed. Without it every layer runs and nothing is excused.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dialsgate.gate.verdict import reason_line

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
    # Links are copied as links (an attack folder's link must reach the gate as one), never chmod-ed
    # (that would change their target).
    shutil.copytree(CORPUS / name, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), symlinks=True)
    for path in [copy, *copy.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return copy


def gate_arguments(args: list[str], copy: Path) -> list[str]:
    """expected.json's ``args``: an argument naming a file of the folder becomes its copy's path."""
    return [str(copy / arg) if not arg.startswith("-") and (copy / arg).exists() else arg for arg in args]


def run_gate(
    template: Path, report: Path, env: dict[str, str] | None = None, args: list[str] = ()
) -> tuple[subprocess.CompletedProcess, list[dict] | None]:
    command = [sys.executable, "-m", "dialsgate", "check", str(template), "--report", str(report), *args]
    if layer_subset():
        command += ["--layers", layer_subset()]
    # expected.json's "env": the gate's limits set for the folder (a shorter timeout keeps the case quick).
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    finished = subprocess.run(
        command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=GATE_TIMEOUT_SECONDS
    )
    verdict_file = report / "verdict.json"
    rows = json.loads(verdict_file.read_text())["rows"] if verdict_file.is_file() else None
    keep = os.environ.get("DIALSGATE_CORPUS_KEEP")
    if keep and verdict_file.is_file():
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(verdict_file, Path(keep) / f"{template.parent.name}.json")
    return finished, rows


SERVED_NAME_PREFIX = "dialsgate-serve-"  # dialsgate.container.serve names the containers it serves in
WORKER_NAME_PREFIX = "dialsgate-worker-"  # dialsgate.container.worker names its worker containers


def containers_created(model_name: str, events: list[dict], prefix: str = SERVED_NAME_PREFIX) -> list[str]:
    """Names of the containers (``prefix``: served, or workers) the engine created for ``model_name``
    among ``events`` (watched while the gate ran: ``Engine.watching``)."""
    return [event["name"] for event in events if (event["name"] or "").startswith(f"{prefix}{model_name}-")]


def model_name(template: Path) -> str:
    """The resource's Name, read with the gate's own capped YAML reader (an alias bomb is refused:
    then the folder's name, which no container of the gate carries)."""
    from dialsgate.contract.template import TemplateRefused, read_template

    try:
        resources = read_template(template)["Resources"]
        return str(next(iter(resources.values()))["Properties"]["Name"])
    except (TemplateRefused, KeyError, TypeError, StopIteration):
        return template.parent.name


def plant_probe(path: str) -> str:
    """A fresh random secret in ``path`` (the file a link of the folder points at)."""
    secret = f"dialsgate-probe-{secrets.token_hex(16)}"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(secret + "\n")
    return secret


def links_of(folder: Path) -> dict[str, str]:
    """{relative path: target} of every symbolic link under ``folder`` (not followed)."""
    found = {}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root) / name
            if path.is_symlink():
                found[path.relative_to(folder).as_posix()] = os.readlink(path)
    return found


def files_holding(secret: str, *roots: Path, since: float | None = None) -> list[str]:
    """Every regular file under ``roots`` (links not followed) whose bytes hold ``secret``;
    with ``since``, only files changed after it (what the gate wrote)."""
    found = []
    needle = secret.encode()
    for root in roots:
        candidates = [root] if root.is_file() and not root.is_symlink() else []
        for parent, _, files in os.walk(root):
            candidates += [Path(parent) / name for name in files]
        for path in candidates:
            if path.is_symlink() or not path.is_file():
                continue
            if since is not None and path.stat().st_mtime < since:
                continue
            if needle in path.read_bytes():
                found.append(str(path))
    return found


def output_tail(finished: subprocess.CompletedProcess, chars: int = 4000) -> str:
    return f"--- gate stdout (tail) ---\n{finished.stdout[-chars:]}\n--- gate stderr (tail) ---\n{finished.stderr[-chars:]}"


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in FOLDERS])
def test_gate_gives_the_expected_verdict(name, scratch):
    expected = json.loads((CORPUS / name / "expected.json").read_text())
    assert expected["verdict"] in ("pass", "fail"), f"{name}/expected.json: verdict {expected['verdict']!r}"
    marker = os.path.expanduser(expected["must_not_create"]) if expected.get("must_not_create") else None
    if marker:
        Path(marker).unlink(missing_ok=True)
    probe = expected.get("probe")  # a file of this machine a link of the folder points at
    secret = plant_probe(probe) if probe else None
    copy = copy_folder(name, scratch)
    links_before = links_of(copy)

    from dialsgate.container.engine import Engine  # Late: the gate's own package, only where the engine is asked

    started = time.time()
    args = gate_arguments(expected.get("args", []), copy)
    # Watched as they come: a busy engine keeps too few past events to ask for them afterwards.
    with Engine.from_settings().watching("type=container", "event=create") as created:
        finished, rows = run_gate(copy / "template.yaml", scratch / "report", expected.get("env"), args)
    served = containers_created(model_name(copy / "template.yaml"), created)
    workers = containers_created(model_name(copy / "template.yaml"), created, WORKER_NAME_PREFIX)

    assert rows is not None, f"{name}: the gate wrote no verdict.json (exit {finished.returncode})\n{output_tail(finished)}"
    # A folder's strings reach the terminal inert (dialsgate.inert): no escape sequence can start.
    assert "\x1b" not in finished.stdout + finished.stderr, f"{name}: an ESC byte in the gate's output\n{output_tail(finished)}"
    assert rows, f"{name}: verdict.json holds no row\n{output_tail(finished)}"
    table = describe(rows)
    if secret:
        written = files_holding(secret, scratch / "report") + files_holding(secret, copy, since=started)
        assert not written, f"{name}: the secret behind a link of the folder appears in what the gate wrote: {written}\n{table}"
        assert secret not in finished.stdout + finished.stderr, f"{name}: the gate printed the secret behind a link\n{table}"
        assert links_of(copy) == links_before, f"{name}: the folder's links changed: {links_of(copy)} != {links_before}"
    if marker:
        assert not Path(marker).exists(), f"{name}: model code wrote {marker} on this machine\n{table}"
    if expected.get("must_not_serve"):
        # A payload inside a container would write its marker there, out of sight: so the file
        # must never reach one, neither a worker container nor a served one.
        assert not served, f"{name}: the gate served a model file it must load nowhere: containers {served}\n{table}"
        assert not workers, f"{name}: a worker container held a model file it must load nowhere: {workers}\n{table}"
    elif expected["verdict"] == "pass":
        assert workers, f"{name}: no worker container ran its model code (the watch would see nothing)\n{table}"
        if not layer_subset():
            assert served, f"{name}: no container served it (the served-container watch would see nothing)\n{table}"

    if expected.get("resources"):
        # Every resource of the template is in the verdict; each MLServer one judged by every layer.
        assert list(dict.fromkeys(row.get("resource") for row in rows if row.get("resource"))) == expected["resources"], table
        layers = {row.get("layer") for row in rows}
        for resource in expected["resources"]:
            own = {row.get("layer") for row in rows if row.get("resource") == resource}
            assert own == {"gate"} or own == layers - {"gate"}, f"{name}: resource {resource} judged by {own} only\n{table}"

    excused = is_layer_not_run if layer_subset() else (lambda row: False)
    unexpected, unreachable = [], []
    failed_checks = {str(row.get("check")) for row in rows if row.get("result") not in ACCOUNTED}
    for row in rows:
        result, check = row.get("result"), str(row.get("check", ""))
        if result in ("passed", "not applicable") or excused(row):
            continue
        if result == "advice":
            if not any(check.startswith(prefix) for prefix in expected.get("must_advise", [])):
                unexpected.append(row)
        elif result == "not run":
            roots = {row.get("root")} & failed_checks if row.get("root") else set()
            if not roots and not any(f"(see {root})" in str(row.get("reason", "")) for root in failed_checks):
                unexpected.append(row)
        elif not any(_matches(row, entry) for entry in expected.get("must_fail", [])):
            unexpected.append(row)
    assert not unexpected, f"{name}: rows expected.json does not account for:\n{describe(unexpected)}\n\nall rows:\n{table}"

    for entry in expected.get("must_fail", []):
        named = [row for row in rows if str(row.get("check", "")).startswith(entry["check"])]
        if not named and layer_subset():
            unreachable.append(entry["check"])
            continue
        assert any(_matches(row, entry) for row in named), (
            f"{name}: no failing row of {entry['check']!r} whose reason contains all of {entry.get('reason_contains', [])}"
            f" and its one line all of {entry.get('line_contains', [])}:\n"
            f"{describe(named) or '(no row)'}\n\nall rows:\n{table}"
        )
    for prefix in expected.get("must_advise", []):
        advised = [row for row in rows if str(row.get("check", "")).startswith(prefix) and row.get("result") == "advice"]
        if not advised and layer_subset() and not any(str(row.get("check", "")).startswith(prefix) for row in rows):
            unreachable.append(prefix)
            continue
        assert advised, f"{name}: no advice row of {prefix!r}:\n\nall rows:\n{table}"
    for check in expected.get("must_not_run", []):
        rows_of = [row for row in rows if str(row.get("check", "")) == check]
        assert rows_of and all(row.get("result") == "not run" for row in rows_of), (
            f"{name}: {check} should be 'not run' behind the root failure:\n{describe(rows_of) or '(no row)'}\n\nall rows:\n{table}"
        )
    leaked = {row.get("check"): leaks(str(row.get("reason", "")), allowed=[scratch]) for row in rows}
    leaked = {check: found for check, found in leaked.items() if found}
    assert not leaked, f"{name}: reasons name dialsgate's own code or this machine: {leaked}\n{table}"

    if expected["verdict"] == "pass":
        assert not expected.get("must_fail"), f"{name}/expected.json: a pass verdict with must_fail rows"
        if not layer_subset():
            assert finished.returncode == 0, (
                f"{name}: every row is accounted for but the gate exited {finished.returncode}\n{output_tail(finished)}"
            )
    else:
        assert expected.get("must_fail"), f"{name}/expected.json: a fail verdict names no must_fail row"
        assert finished.returncode != 0, f"{name}: expected to fail, the gate exited 0:\n{table}"
    if unreachable:
        pytest.skip(f"{name}: {unreachable} not among the rows of {LAYERS_VARIABLE}={layer_subset()} (a layer that did not run)")


#: What a reason must never name: it speaks of the author's folder (its files where the gate
#: copied them or where the container mounts them, /mnt/<Name>/...), never of dialsgate's own
#: code or of the machine the gate ran on. Each found means a gate internal reached the verdict
#: (a crash of the gate shown as the folder's defect, a path of the gate's scratch instead of the
#: folder's file) or this machine's layout reached a verdict that may be shared.
LEAKS = (
    (re.compile(r"worker_main\.py"), "the worker's source file"),
    (re.compile(r'File "<string>"'), "a frame of the worker script (python -c in the worker container)"),
    (re.compile(r"dialsgate/(?:checks|container|contract|environment|gate|modelfile|protocol|pytest_plugin|report|"
                r"transports)/\w+\.py"), "a source file of dialsgate"),
    (re.compile(re.escape(tempfile.gettempdir().rstrip("/")) + r"/dialsgate-(?:gate|worker|handler|build|serve|report-build)-"),
     "a temporary folder of the gate"),
    (re.compile(re.escape(str(REPOSITORY)) + r"(?=/|\b)"), "this checkout of dialsgate"),
    (re.compile(r"(?<![\w.-])" + re.escape(str(Path.home())) + r"(?=/|\b)"), "this machine's home folder"),
)  # fmt: skip


def leaks(reason: str, allowed: list[Path] = ()) -> list[str]:
    """What of ``LEAKS`` a reason names (``allowed``: folders it may name, the folder's copy)."""
    for folder in allowed:
        reason = reason.replace(str(folder), "<the folder's copy>")
    return [f"{what}: {found.group(0)!r}" for pattern, what in LEAKS for found in [pattern.search(reason)] if found]


def test_a_reason_naming_the_gate_or_this_machine_is_a_leak(scratch):
    """The corpus check can fail: each kind of leak, on a fabricated reason, is found; the
    folder's own paths (its copy, its place in the container) are not."""
    fabricated = {
        "the worker's source file": 'Traceback:\n  File "/opt/gate/dialsgate/environment/worker_main.py", line 9',
        "a frame of the worker script": 'Traceback (most recent call last):\n  File "<string>", line 212, in load',
        "a source file of dialsgate": "AssertionError at /venv/lib/python3.11/site-packages/dialsgate/checks/base.py:89",
        "a temporary folder of the gate": f"no such file: {tempfile.gettempdir()}/dialsgate-worker-x1y2/folder/app.py",
        "this checkout of dialsgate": f"read {REPOSITORY}/tox.ini",
        "this machine's home folder": f"cached in {Path.home()}/.cache/dialsgate/standin",
    }
    for what, reason in fabricated.items():
        found = leaks(reason, allowed=[scratch])
        assert found and found[0].startswith(what), (what, found)
    folder_own = f"{scratch}/mlserver-model/app.py, line 3; /mnt/NMF/app.py is read-only in DIALS; dialsgate.toml"
    assert leaks(folder_own, allowed=[scratch]) == []


#: Results that are no failure of their own (a "not run" row points at its root).
ACCOUNTED = ("passed", "not applicable", "advice", "not run")


def _matches(row: dict, entry: dict) -> bool:
    """A failing row of the entry's check (prefix) whose reason holds every reason_contains word,
    and whose reason in one line (the verdict's screen) every line_contains word."""
    return (
        str(row.get("check", "")).startswith(entry["check"])
        and row.get("result") not in ACCOUNTED
        and all(word in str(row.get("reason", "")) for word in entry.get("reason_contains", []))
        and all(word in reason_line(str(row.get("reason", ""))) for word in entry.get("line_contains", []))
    )
