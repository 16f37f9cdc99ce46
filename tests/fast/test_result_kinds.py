"""The kinds of result a check can give, as the gate records them (dialsgate.pytest_plugin.results).

A check raises CheckFailed (failure), CheckAdvice (hardening: passes unless strict),
CheckNotApplicable (does not apply to this folder) or CheckNotRun (behind a root failure).
Run in a pytester session with --gate-summary, the recorded outcomes are read back.
"""

from __future__ import annotations

import json

import pytest

pytest_plugins = ("pytester",)

CHECKS = """
from dialsgate.checks import CheckAdvice, CheckFailed, CheckNotApplicable, CheckNotRun

def test_failure():
    raise CheckFailed("output 'Metric' is FP64, the template declares FP32")

def test_advice():
    raise CheckAdvice("a request without input 'x' answered HTTP 500")

def test_not_applicable():
    raise CheckNotApplicable("model.onnx is an ONNX model, not a pickle")

def test_not_run():
    raise CheckNotRun("check_handler_loads", "the handler did not load")

def test_passes():
    pass
"""


def run(pytester, *options) -> tuple[int, dict[str, dict]]:
    pytester.makepyfile(test_kinds=CHECKS)
    summary = pytester.path / "summary.json"
    result = pytester.runpytest_inprocess("-p", "dialsgate.pytest_plugin.results", "--gate-summary", str(summary), *options)
    rows = {row["nodeid"].split("::")[-1]: row for row in json.loads(summary.read_text())["results"]}
    return result.ret, rows


@pytest.fixture
def outcomes(pytester):
    return run(pytester)


def test_failure_is_failed(outcomes):
    _, rows = outcomes
    assert rows["test_failure"]["outcome"] == "failed"
    assert "FP64" in rows["test_failure"]["reason"]


def test_advice_is_recorded_as_advice_with_its_reason(outcomes):
    _, rows = outcomes
    assert rows["test_advice"]["outcome"] == "advice"
    assert rows["test_advice"]["reason"] == "a request without input 'x' answered HTTP 500"


def test_not_applicable_and_not_run_are_recorded_apart(outcomes):
    _, rows = outcomes
    assert rows["test_not_applicable"]["outcome"] == "not applicable"
    assert rows["test_not_run"]["outcome"] == "not run"
    assert "check_handler_loads" in rows["test_not_run"]["reason"]


def test_advice_alone_does_not_fail_pytest(pytester):
    pytester.makepyfile(
        test_advice_only="from dialsgate.checks import CheckAdvice\n\ndef test_a():\n    raise CheckAdvice('x')\n"
    )
    assert pytester.runpytest_inprocess("-p", "dialsgate.pytest_plugin.results").ret == 0


def test_strict_turns_advice_into_a_failure(pytester):
    code, rows = run(pytester, "--dials-strict")
    assert code == 1
    assert rows["test_advice"]["outcome"] == "failed"
    assert rows["test_advice"]["reason"].startswith("advice, failing under strict:")


def test_gate_rows_advice_and_not_applicable_pass_not_run_fails():
    from dialsgate.gate.runner import Row

    assert Row("fast", "c", "advice").passed
    assert Row("fast", "c", "not applicable").passed
    assert not Row("fast", "c", "not run").passed
    assert not Row("fast", "c", "failed").passed


DECLARED_CHECKS = """
import pytest

from dialsgate.checks import CheckAdvice, CheckFailed, case, check


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_known_advice(subject):
    raise CheckAdvice("an empty batch (N=0) crashed the handler")


@check(kind="failure", concern="signature", runs_model_code=True)
def check_known_failure(subject):
    raise CheckFailed("output 'Score' is FP64")


@check(kind="failure", concern="signature", runs_model_code=True)
def check_failure_raising_advice(subject):
    raise CheckAdvice("advice from a failure check")


@check(kind="advice", concern="robustness", runs_model_code=True)
def check_known_advice_fixed(subject):
    pass


KNOWN = {
    "check_known_advice": "our batches are never empty; MODEL-7",
    "check_known_failure": "tracked in MODEL-8",
    "check_known_advice_fixed": "tracked in MODEL-9",
}
CASES = [case(check_known_advice), case(check_known_failure), case(check_failure_raising_advice), case(check_known_advice_fixed)]


@pytest.mark.parametrize(
    "contract_check",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=KNOWN[c.id], strict=True)] if c.id in KNOWN else [])
        for c in CASES
    ],
)
def test_contract(contract_check):
    contract_check(None)
"""


def run_declared(pytester, *options) -> dict[str, dict]:
    """Check cases parametrized as dialsgate.pytest_plugin.parametrize does (known failures: strict xfails)."""
    pytester.makepyfile(test_declared=DECLARED_CHECKS)
    summary = pytester.path / "summary.json"
    pytester.runpytest_inprocess("-p", "dialsgate.pytest_plugin.results", "--gate-summary", str(summary), *options)
    return {row["nodeid"].split("[")[-1].rstrip("]"): row for row in json.loads(summary.read_text())["results"]}


@pytest.mark.parametrize("options", [(), ("--dials-strict",)], ids=["default", "strict"])
def test_known_advice_is_accepted_as_advice_with_the_authors_reason(pytester, options):
    rows = run_declared(pytester, *options)
    assert rows["check_known_advice"]["outcome"] == "advice"
    assert rows["check_known_advice"]["reason"] == (
        "known: our batches are never empty; MODEL-7: an empty batch (N=0) crashed the handler"
    )


def test_known_failure_of_a_failure_check_stays_an_xfail_the_gate_refuses(pytester):
    from dialsgate.gate.runner import Row

    rows = run_declared(pytester)
    assert rows["check_known_failure"]["outcome"] == "xfailed"
    assert not Row("fast", "check_known_failure", rows["check_known_failure"]["outcome"]).passed


def test_a_fixed_known_advice_is_noticed(pytester):
    rows = run_declared(pytester)
    assert rows["check_known_advice_fixed"]["outcome"] == "failed"


def test_advice_raised_by_a_failure_check_fails(pytester):
    rows = run_declared(pytester)
    assert rows["check_failure_raising_advice"]["outcome"] == "failed"
    assert "a failure check" in rows["check_failure_raising_advice"]["reason"]
