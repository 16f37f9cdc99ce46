"""The gate's verdict keeps the whole reason and its root cause, in the table, verdict.json and the report.

``pytest tests/gate/test_reasons.py`` (the gate's fast layer on a broken copy of examples/nmf1d).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dialsgate.gate.cli import main
from dialsgate.gate.runner import Row
from dialsgate.gate.verdict import default_report_folder, print_table, print_verdict, wrap_reason
from dialsgate.pytest_plugin.results import exception_chain

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "nmf1d"
#: dism-core 1.5.1's sentence naming the missing key, on the last line of its pydantic error.
DISM_CORE_SENTENCE = "BuiltinThreshold = True and FlaggingKey (not None)"


@pytest.fixture(autouse=True)
def _no_bytecode(monkeypatch):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")


@pytest.fixture
def example_copy():
    scratch = Path(tempfile.mkdtemp(prefix="dialsgate-reasons-"))
    scratch.chmod(0o755)
    copy = scratch / "nmf1d"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    yield copy
    shutil.rmtree(scratch, ignore_errors=True)


def without_flagging_key(copy: Path) -> Path:
    """BuiltinThreshold true (the model flags itself) but no FlaggingKey: dism-core refuses it."""
    template = copy / "template.yaml"
    text = template.read_text()
    for old, new in (("BuiltinThreshold: false", "BuiltinThreshold: true"), ("      AnomalyThreshold: 9.2\n", "")):
        assert text.count(old) == 1, f"{template}: expected one {old!r} (has the example changed?)"
        text = text.replace(old, new)
    assert "FlaggingKey" not in text
    template.write_text(text)
    return template


def test_verdict_keeps_dism_core_sentence_naming_flagging_key(example_copy, capsys):
    template = without_flagging_key(example_copy)
    report = example_copy.parent / "report"
    code = main(["check", str(template), "--layers", "fast", "--fail-fast", "--report", str(report), "-v"])
    out = capsys.readouterr().out
    assert code == 1
    rows = json.loads((report / "verdict.json").read_text())["rows"]
    finding = {"layer", "check", "result", "reason", "forgeable", "resource", "transport", "kind", "concern", "root", "evidence", "duration"}  # fmt: skip
    assert all(set(row) == finding for row in rows), rows[:2]
    schema = next(row for row in rows if row["check"] == "check_template_schema")
    assert schema["result"] == "failed", schema
    assert DISM_CORE_SENTENCE in schema["reason"], schema["reason"]
    # The terminal table of -v wraps instead of cutting: every word of the sentence is printed.
    assert all(word in out for word in ("BuiltinThreshold", "FlaggingKey", "(not", "None).")), out[-3000:]
    # The HTML report shows the full reason, escaped.
    index = (report / "index.html").read_text()
    assert "BuiltinThreshold = True and FlaggingKey (not None)" in index
    assert 'class="reason"' in index


def test_root_cause_of_a_chained_exception_is_kept(tmp_path):
    """A check that fails while handling another exception: the deepest message reaches the verdict."""
    test_file = tmp_path / "test_chain.py"
    test_file.write_text(
        "def load():\n"
        "    raise ValueError('root cause: FlaggingKey missing in Properties')\n\n\n"
        "def test_chained():\n"
        "    try:\n"
        "        load()\n"
        "    except ValueError as error:\n"
        "        raise RuntimeError('the template did not load') from error\n\n\n"
        "def test_multi_line():\n"
        "    raise AssertionError('first line\\nsecond line names the defect: ' + 'x' * 500)\n\n\n"
        "def test_version_warning():\n"
        "    import warnings\n"
        "    from sklearn.exceptions import InconsistentVersionWarning\n"
        "    try:\n"
        "        with warnings.catch_warnings():\n"
        "            warnings.simplefilter('error')\n"
        "            warnings.warn(InconsistentVersionWarning(estimator_name='NMF', current_sklearn_version='1.9.1', original_sklearn_version='1.4.1.post1'))\n"
        "    except InconsistentVersionWarning as error:\n"
        "        raise AssertionError('the joblib did not load in a clean interpreter') from error\n\n\n"
        "def test_passing_with_a_figure(record_property):\n"
        "    record_property('dialsgate_note', 'peak memory 300 MiB')\n"
    )
    summary = tmp_path / "summary.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "dialsgate.pytest_plugin.results",
            "-p",
            "no:cacheprovider",
            str(test_file),
            "--gate-summary",
            str(summary),
        ],
        cwd=tmp_path,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPOSITORY), "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
    )
    results = {r["nodeid"].split("::")[-1]: r for r in json.loads(summary.read_text())["results"]}
    chained = results["test_chained"]["reason"]
    assert (
        "RuntimeError: the template did not load" in chained
        and "caused by ValueError: root cause: FlaggingKey missing" in chained
    )
    long = results["test_multi_line"]["reason"]
    assert "second line names the defect" in long and long.endswith("x" * 100)
    version = results["test_version_warning"]["reason"]
    assert "InconsistentVersionWarning" in version and "1.4.1.post1" in version and "1.9.1" in version, version
    figure = results["test_passing_with_a_figure"]
    assert figure["outcome"] == "passed" and figure["reason"] == "peak memory 300 MiB"


def test_exception_chain_follows_context_and_stops_on_cycles():
    try:
        try:
            raise KeyError("inner")
        except KeyError:
            raise ValueError("outer") from None  # suppressed context: still the root cause
    except ValueError as error:
        chain = exception_chain(error)
    assert [type(e) for e in chain] == [ValueError, KeyError]
    loop = ValueError("loop")
    loop.__context__ = loop
    assert exception_chain(loop) == [loop]


def test_full_table_wraps_long_reasons_with_indented_continuation(capsys):
    """The -v table: long reasons wrap onto indented lines, never cut."""
    reason = "word " * 100 + "END"
    print_table([Row("fast", "check_x", "failed", reason), Row("fast", "check_y", "passed", "")], columns=100)
    lines = capsys.readouterr().out.splitlines()
    body = lines[lines.index(next(line for line in lines if line.startswith("fast    check_x"))) :]
    continuation = [line for line in body[1:] if line.startswith(" ")]
    assert continuation and all(len(line) <= 100 for line in body if line.strip())
    indent = len(body[0]) - len(body[0].lstrip(" ")) + body[0].index("word")
    assert all(line.startswith(" " * indent) and not line.startswith(" " * (indent + 1)) for line in continuation)
    assert "END" in "\n".join(body)
    assert wrap_reason("a\nb", 10) == ["a", "b"]


def test_one_screen_verdict_names_failures_and_advice_in_a_line_each_and_counts_the_rest(capsys):
    rows = [
        Row("fast", "check_template_schema", "passed"),
        Row("fast", "check_output_matches_signature[Score]", "failed", "output 'Score' is FP64 " + "word " * 60 + "END"),
        Row("server", "check_output_matches_signature[Score]@http", "failed", "output 'Score' is FP64 over HTTP"),
        Row("fast", "check_handler_answers_template_request", "not run", "the handler did not load (see check_handler_loads)"),
        Row("fast", "check_empty_batch_answered", "advice", "an empty batch crashed the handler"),
    ]
    print_verdict(rows, columns=100)
    out = capsys.readouterr().out
    assert "signature" in out and "1 advice" in out and "failures: 2 rows of 1 check" in out
    assert out.count("check_output_matches_signature") == 1, "one check over several transports is listed once"
    assert "(2 rows; fast, server @http)" in out and "END" not in out and all(len(line) <= 100 for line in out.splitlines())
    assert "1 behind check_handler_loads" in out and "check_handler_answers_template_request" not in out
    assert "advice: 1 row of 1 check" in out and "an empty batch crashed the handler" in out
    assert "check_template_schema" not in out, "passed rows only in -v, the report and verdict.json"


def test_report_folders_of_two_models_with_one_resource_key_differ(tmp_path):
    a = default_report_folder(tmp_path / "a" / "template.yaml", None, "Model")
    b = default_report_folder(tmp_path / "b" / "template.yaml", None, "Model")
    built = default_report_folder(tmp_path / "a" / "template.yaml", tmp_path / "a" / ".dism-artifacts/build/Model", "Model")
    assert len({a, b, built}) == 3
    assert a == default_report_folder(tmp_path / "a" / "template.yaml", None, "Model")
    assert a.parent == REPOSITORY / "report" and a.name.startswith("Model-")
