"""The gate's checks are generic: they pass the second example model and catch broken copies of it.

Each case copies ``examples/nmf1d`` (template, handler, helper package, joblib, reference batch)
to a fresh 0755 folder, applies one defect, runs the gate's fast layer on the copy and requires
a failing row whose check and reason name that defect. The unbroken copy must pass every fast
row. ``pytest tests/gate`` (about 5 s per gate run).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dialsgate.gate.cli import check_parser
from dialsgate.gate.runner import run_gate

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "nmf1d"
SERVER_FOLDER = "mlserver-model"
INPUT = "ChargeBPix1"


# --------------------------------------------------------------------------- running the gate


def run_fast_gate(template: Path):
    """The gate's fast layer on ``template`` in this interpreter: a Verdict with one row per check."""
    args = check_parser().parse_args([str(template), "--layers", "fast", "--fail-fast", "--no-report"])
    return run_gate(args, [])


def fast_rows(verdict) -> dict[str, object]:
    return {row.check: row for row in verdict.rows if row.layer == "fast"}


def describe(verdict) -> str:
    return "\n".join(f"  {row.layer:<6} {row.check:<55} {row.result:<8} {row.reason[:220]}" for row in verdict.rows)


@pytest.fixture(autouse=True)
def _no_bytecode(monkeypatch):
    # As tox does (set_env): otherwise the in-process handler import writes __pycache__ into
    # the copy's CodeUri and the package audit then finds it (see the report to the lead).
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")


@pytest.fixture
def example_copy():
    """A fresh copy of examples/nmf1d in a 0755 temp folder (the server runs as another uid)."""
    scratch = Path(tempfile.mkdtemp(prefix="dialsgate-broken-"))
    scratch.chmod(0o755)
    copy = scratch / "nmf1d"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    copy.chmod(0o755)
    yield copy
    shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- the defects


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path}: expected exactly one {old!r} to break (has the example changed?)"
    path.write_text(text.replace(old, new))


def score_as_fp64(copy: Path) -> None:
    """The handler answers Score as FP64 (the template declares FP32): the seed's Metric defect."""
    app = copy / SERVER_FOLDER / "app.py"
    _replace(app, 'SCORE_DATATYPE = "FP32"', 'SCORE_DATATYPE = "FP64"')
    _replace(app, "score.astype(np.float32).tolist()", "score.astype(np.float64).tolist()")


def delete_helper_module(copy: Path) -> None:
    """nmf1d/model.py, which defines the pickled class, is not in the server folder."""
    (copy / SERVER_FOLDER / "nmf1d" / "model.py").unlink()


def dims_off_by_one(copy: Path) -> None:
    """The template promises 101 bins; the handler and the monitoring element have 100."""
    _replace(copy / "template.yaml", "Dims: [-1, 100]", "Dims: [-1, 101]")


def dims_off_by_one_without_reference_batch(copy: Path) -> None:
    """As above, for a model that ships no reference batch (the checks then build inputs from Dims)."""
    dims_off_by_one(copy)
    (copy / "reference_batch.npz").unlink()


def unknown_datatype(copy: Path) -> None:
    """A DataType that is no V2 datatype: reported by name, not as a crash while collecting."""
    _replace(copy / "template.yaml", "DataType: TYPE_INT32", "DataType: FLOAT")


OUTSIDE_MODULE = "charge_tools"
OUTSIDE_SOURCE = '''
"""A module that lives outside the server folder (the seed deployment's defect)."""

from nmf1d.model import NMF1D


class TunedNMF1D(NMF1D):
    """Pickled by reference to this module, which the server never sees."""
'''
DUMP_SCRIPT = """
import sys

import joblib

outside, server_folder, model_file = sys.argv[1:4]
sys.path[:0] = [outside, server_folder]
from charge_tools import TunedNMF1D

model = joblib.load(model_file)
tuned = TunedNMF1D.__new__(TunedNMF1D)
tuned.__setstate__(model.__getstate__())
joblib.dump(tuned, model_file)
"""


def joblib_referencing_outside_module(copy: Path) -> None:
    """The joblib holds an instance of a class from a module outside the server folder."""
    outside = copy.parent / "outside"
    outside.mkdir()
    (outside / f"{OUTSIDE_MODULE}.py").write_text(textwrap.dedent(OUTSIDE_SOURCE))
    server_folder = copy / SERVER_FOLDER
    subprocess.run(
        [sys.executable, "-c", DUMP_SCRIPT, str(outside), str(server_folder), str(server_folder / "nmf1d.joblib")],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert OUTSIDE_MODULE.encode() in (server_folder / "nmf1d.joblib").read_bytes()


def stray_pycache(copy: Path) -> None:
    """An interpreter cache left in CodeUri: dismcli package would zip it for DIALS."""
    cache = copy / SERVER_FOLDER / "__pycache__"
    cache.mkdir()
    (cache / "x.cpython-311.pyc").write_bytes(b"\x00" * 64)


@dataclass(frozen=True)
class Defect:
    apply: Callable[[Path], None]
    #: {check (row name): words its reason must contain}; every one must be a failing fast row.
    failing: dict[str, tuple[str, ...]]
    #: When set: exactly these fast rows fail (the defect is reported where it is, nowhere else).
    only: frozenset[str] | None = None
    marks: tuple = field(default=())


DEFECTS = {
    "fp64_metric": Defect(
        score_as_fp64,
        {"check_output_matches_signature[Score]": ("Score", "FP64", "FP32")},
        only=frozenset({"check_output_matches_signature[Score]"}),
    ),
    "helper_module_missing": Defect(
        delete_helper_module,
        {
            "check_pickle_globals_resolvable": ("nmf1d.model.NMF1D",),
            "check_imports_available_in_image": ("nmf1d.model", "not in the server folder"),
        },
        # One cause: every row that needs the handler is not run behind these two.
        only=frozenset({"check_pickle_globals_resolvable", "check_imports_available_in_image"}),
    ),
    "dims_off_by_one": Defect(
        dims_off_by_one,
        {
            f"check_input_dims[{INPUT}]": (INPUT, "101"),
            "check_reference_batch_matches_template": (INPUT, "101"),
        },
    ),
    "dims_off_by_one_without_reference_batch": Defect(
        dims_off_by_one_without_reference_batch,
        {
            f"check_input_dims[{INPUT}]": (INPUT, "101"),
            "check_handler_answers_template_request": (INPUT, "101"),
            "check_clean_interpreter_round_trip": (INPUT, "101"),
        },
    ),
    "joblib_outside_folder": Defect(
        joblib_referencing_outside_module,
        {
            "check_pickle_globals_resolvable": (f"{OUTSIDE_MODULE}.TunedNMF1D",),
            "check_imports_available_in_image": (OUTSIDE_MODULE, "not in the image"),
        },
        only=frozenset({"check_pickle_globals_resolvable", "check_imports_available_in_image"}),
    ),
    "unknown_datatype": Defect(
        unknown_datatype,
        {
            "check_datatypes_known": (f"InputSignature[{INPUT}].DataType 'FLOAT'",),
            "check_template_schema": ("DataType",),
        },
    ),
    "stray_pycache": Defect(
        stray_pycache,
        {"check_package_has_no_stray_files": ("__pycache__", "x.cpython-311.pyc")},
        only=frozenset({"check_package_has_no_stray_files"}),
    ),
}


# --------------------------------------------------------------------------- the tests


def test_unbroken_copy_passes_every_check(example_copy):
    verdict = run_fast_gate(example_copy / "template.yaml")
    rows = fast_rows(verdict)
    assert rows, "the fast layer reported no row:\n" + describe(verdict)
    failed = {name: row for name, row in rows.items() if not row.passed}
    assert not failed, "the unbroken example copy fails fast checks:\n" + describe(verdict)
    assert all(row.result == "not run" for row in verdict.rows if row.layer != "fast"), describe(verdict)
    # Generated from this template: its one input and its MetricKey output are checked by name.
    for name in (f"check_input_dims[{INPUT}]", "check_output_matches_signature[Score]", "check_key_in_outputs[metric_key]"):
        assert name in rows, f"{name} was not generated from the template:\n" + describe(verdict)
    assert not any(name.startswith("check_flag_output_is_bool") for name in rows), "no FlaggingKey, yet a flag check ran"


@pytest.mark.parametrize("defect", [pytest.param(d, id=key, marks=list(d.marks)) for key, d in DEFECTS.items()])
def test_gate_fails_naming_the_defect(example_copy, defect):
    defect.apply(example_copy)
    verdict = run_fast_gate(example_copy / "template.yaml")
    assert not verdict.passed
    rows = fast_rows(verdict)
    # Rows "not run" behind a root row are not failures of their own (one cause, one failure).
    failed = {name for name, row in rows.items() if not row.passed and row.result != "not run"}
    assert failed, "the gate's fast layer passed the broken copy:\n" + describe(verdict)
    behind = [row for row in rows.values() if row.result == "not run"]
    assert all(any(f"(see {root})" in row.reason for root in failed) for row in behind), describe(verdict)
    for check, words in defect.failing.items():
        assert check in failed, f"{check} did not fail (failed: {sorted(failed)}):\n" + describe(verdict)
        reason = rows[check].reason
        missing = [word for word in words if word not in reason]
        assert not missing, f"{check}: reason does not name {missing}: {reason}"
    if defect.only is not None:
        assert failed == defect.only, f"failing rows {sorted(failed)}, expected only {sorted(defect.only)}:\n" + describe(verdict)
