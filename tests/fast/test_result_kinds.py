"""The kinds of result a check can give, as values (``checks.findings.judge``), and as the pytest
adapter says them to pytest.

A check raises CheckFailed (failure), CheckAdvice (hardening: passes unless strict),
CheckNotApplicable (does not apply to this folder) or CheckNotRun (behind a root failure), or
returns (passed, with an optional figure). Known failures come from the author's dialsgate.toml.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from dialsgate.checks import CheckAdvice, CheckFailed, CheckNotApplicable, CheckNotRun, case, check
from dialsgate.checks.findings import Finding, Outcome, judge

pytest_plugins = ("pytester",)


@check(kind="failure", concern="signature", runs_model_code=True)
def check_kinds_failure(subject):
    raise CheckFailed("output 'Metric' is FP64, the template declares FP32")


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_kinds_advice(subject):
    raise CheckAdvice("a request without input 'x' answered HTTP 500")


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_kinds_not_applicable(subject):
    raise CheckNotApplicable("model.onnx is an ONNX model, not a pickle")


@check(kind="failure", concern="signature", runs_model_code=True)
def check_kinds_not_run(subject):
    raise CheckNotRun("check_handler_loads", "the handler did not load")


@check(kind="failure", concern="server", runs_model_code=True)
def check_kinds_figure(subject):
    return "peak memory 180 MiB"


@check(kind="failure", concern="signature", runs_model_code=True)
def check_kinds_broken(subject):
    return {}["no such key"]


@check(kind="failure", concern="signature", runs_model_code=True)
def check_kinds_failure_raising_advice(subject):
    raise CheckAdvice("advice from a failure check")


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_kinds_advice_fixed(subject):
    pass


#: These checks look at no folder; judge asks a subject only whether its early work has ended.
NO_SUBJECT = SimpleNamespace(wait_for_handler_work=lambda: None)


def judged(function, **options) -> Finding:
    return judge(case(function), NO_SUBJECT, layer="fast", resource="Model", **options)


def test_failure_is_failed_with_its_whole_reason():
    row = judged(check_kinds_failure)
    assert (row.result, row.kind, row.concern, row.resource) == (Outcome.FAILED, "failure", "signature", "Model")
    assert row.reason == "output 'Metric' is FP64, the template declares FP32"
    assert not row.passed and row.forgeable


def test_advice_is_advice_with_its_reason_and_passes():
    row = judged(check_kinds_advice)
    assert row.result == Outcome.ADVICE and row.passed
    assert row.reason == "a request without input 'x' answered HTTP 500"


def test_strict_turns_advice_into_a_failure():
    row = judged(check_kinds_advice, strict=True)
    assert row.result == Outcome.FAILED
    assert row.reason.startswith("advice, failing under strict:")


def test_not_applicable_passes_and_not_run_names_its_root():
    assert judged(check_kinds_not_applicable).result == Outcome.NOT_APPLICABLE
    assert not judged(check_kinds_not_applicable).forgeable
    row = judged(check_kinds_not_run)
    assert (row.result, row.root) == (Outcome.NOT_RUN, "check_handler_loads")
    assert not row.passed


def test_a_returned_figure_is_the_passing_rows_reason():
    row = judged(check_kinds_figure)
    assert (row.result, row.reason) == (Outcome.PASSED, "peak memory 180 MiB")


def test_a_check_that_breaks_is_an_error_with_its_traceback_as_evidence():
    row = judged(check_kinds_broken)
    assert row.result == Outcome.ERROR and not row.passed
    assert row.reason == "KeyError: 'no such key'"
    assert "check_kinds_broken" in row.evidence


def test_advice_raised_by_a_failure_check_fails():
    row = judged(check_kinds_failure_raising_advice)
    assert row.result == Outcome.FAILED and "a failure check" in row.reason


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_known_advice_is_accepted_as_advice_with_the_authors_reason(strict):
    row = judged(check_kinds_advice, strict=strict, known={"check_kinds_advice": "our batches are never empty; MODEL-7"})
    assert row.result == Outcome.ADVICE
    assert row.reason == "known: our batches are never empty; MODEL-7: a request without input 'x' answered HTTP 500"


def test_known_failure_of_a_failure_check_is_an_xfail_the_gate_refuses():
    row = judged(check_kinds_failure, known={"check_kinds_failure": "tracked in MODEL-8"})
    assert row.result == Outcome.XFAILED and not row.passed
    assert row.reason.startswith("tracked in MODEL-8")


def test_a_fixed_known_failure_is_noticed():
    row = judged(check_kinds_advice_fixed, known={"check_kinds_advice_fixed": "tracked in MODEL-9"})
    assert row.result == Outcome.XPASSED and not row.passed


def test_gate_rows_advice_and_not_applicable_pass_the_others_fail():
    assert Finding("fast", "c", "advice").passed
    assert Finding("fast", "c", "not applicable").passed
    for result in ("not run", "failed", "error", "xfailed", "xpassed", "not supported"):
        assert not Finding("fast", "c", result).passed, result


def test_a_finding_is_written_as_json_text():
    row = judged(check_kinds_not_run)
    assert json.loads(json.dumps(row.__dict__))["result"] == "not run"


ADAPTED = """
from types import SimpleNamespace

import pytest

from dialsgate.checks import CheckAdvice, CheckFailed, CheckNotApplicable, CheckNotRun, case, check
from dialsgate.checks.findings import judge
from dialsgate.pytest_plugin.results import enact

NO_SUBJECT = SimpleNamespace(wait_for_handler_work=lambda: None)


@check(kind="failure", concern="signature", runs_model_code=True)
def check_adapted_failure(subject):
    raise CheckFailed("output 'Score' is FP64")


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_adapted_advice(subject):
    raise CheckAdvice("an empty batch (N=0) crashed the handler")


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_adapted_not_applicable(subject):
    raise CheckNotApplicable("not a pickle")


@check(kind="failure", concern="signature", runs_model_code=True)
def check_adapted_not_run(subject):
    raise CheckNotRun("check_handler_loads", "the handler did not load")


@check(kind="failure", concern="signature", runs_model_code=True)
def check_adapted_known(subject):
    raise CheckFailed("tracked")


@pytest.mark.parametrize("function", [check_adapted_failure, check_adapted_advice, check_adapted_not_applicable,
                                      check_adapted_not_run, check_adapted_known], ids=lambda f: f.__name__)
def test_adapted(function, request):
    enact(judge(case(function), NO_SUBJECT, layer="fast", known={"check_adapted_known": "MODEL-1"}), request.node)
"""


def test_the_pytest_adapter_says_each_finding_to_pytest_and_records_it(pytester):
    pytester.makepyfile(test_adapted=ADAPTED)
    summary = pytester.path / "summary.json"
    result = pytester.runpytest_inprocess("-p", "dialsgate.pytest_plugin.results", "--gate-summary", str(summary))
    result.assert_outcomes(passed=2, failed=1, skipped=1, xfailed=1)
    rows = {row["nodeid"].split("[")[-1].rstrip("]"): row for row in json.loads(summary.read_text())["results"]}
    assert {name: row["outcome"] for name, row in rows.items()} == {
        "check_adapted_failure": "failed",
        "check_adapted_advice": "advice",
        "check_adapted_not_applicable": "not applicable",
        "check_adapted_not_run": "not run",
        "check_adapted_known": "xfailed",
    }
    assert rows["check_adapted_failure"]["reason"] == "output 'Score' is FP64"


def test_dialsgate_run_is_the_gate_without_pytest(tmp_path):
    """``dialsgate.run`` judges a template and returns the findings as values."""
    import dialsgate

    (tmp_path / "template.yaml").write_text("TemplateFormatVersion: '2025-03-31'\nResources: {}\n")
    verdict = dialsgate.run(tmp_path / "template.yaml", dialsgate.RunOptions(layers=("fast",), log=lambda line: None))
    assert not verdict.passed
    assert [(row.check, row.result) for row in verdict.rows] == [("load_contract", Outcome.FAILED)]
    assert "has no Resources" in verdict.rows[0].reason
