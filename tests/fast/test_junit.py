"""--junit-xml: every row of every layer is one JUnit test case, read back with junitparser (an
independent JUnit reader, as CI systems read the file)."""

from __future__ import annotations

import junitparser

from dialsgate.gate.junit import write_junit_xml
from dialsgate.gate.runner import Row

ROWS = [
    Row("fast", "check_template_schema", "passed"),
    Row("fast", "check_output_matches_signature[Score]", "failed", "output 'Score' is FP64, the template declares FP32"),
    Row("fast", "check_handler_answers_template_request", "not run", "the handler did not load (see check_handler_loads)"),
    Row("fast", "check_pickle_globals_safe", "not applicable", "model.onnx is an ONNX file"),
    Row("fast", "check_empty_batch_answered", "advice", "an empty batch (N=0) crashed the handler"),
    Row("server", "check_input_dims[Charge]@http", "passed"),
    Row("server", "test_server_health::test_server_is_ready", "error", "the container stopped"),
]


def _cases(path) -> dict[str, junitparser.TestCase]:
    xml = junitparser.JUnitXml.fromfile(str(path))
    return {case.name: case for suite in xml for case in suite}


def test_every_row_is_one_test_case_with_its_outcome(tmp_path):
    path = write_junit_xml(ROWS, tmp_path / "junit.xml", {"dialsgate": "0.2.0", "strict": False})
    cases = _cases(path)
    assert list(cases) == [row.check for row in ROWS]
    assert cases["check_template_schema"].is_passed
    (failure,) = cases["check_output_matches_signature[Score]"].result
    assert isinstance(failure, junitparser.Failure) and "FP64" in failure.message
    (skipped,) = cases["check_handler_answers_template_request"].result
    assert isinstance(skipped, junitparser.Skipped) and "see check_handler_loads" in skipped.message
    assert isinstance(cases["check_pickle_globals_safe"].result[0], junitparser.Skipped)
    advice = cases["check_empty_batch_answered"]
    assert advice.is_passed and "advice: an empty batch" in advice.system_out
    assert isinstance(cases["test_server_health::test_server_is_ready"].result[0], junitparser.Error)
    assert cases["check_input_dims[Charge]@http"].classname == "dialsgate.server.signature"


def test_suites_count_their_cases(tmp_path):
    xml = junitparser.JUnitXml.fromfile(str(write_junit_xml(ROWS, tmp_path / "junit.xml")))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == {"dialsgate.fast", "dialsgate.server"}
    fast = suites["dialsgate.fast"]
    assert (fast.tests, fast.failures, fast.errors, fast.skipped) == (5, 1, 0, 2)
    server = suites["dialsgate.server"]
    assert (server.tests, server.failures, server.errors, server.skipped) == (2, 0, 1, 0)


def test_advice_under_strict_is_a_failure(tmp_path):
    """Under strict the gate records advice rows as failed (gate_plugin): they are <failure>s."""
    strict = [Row("fast", "check_empty_batch_answered", "failed", "advice, failing under strict: an empty batch crashed")]
    (case,) = _cases(write_junit_xml(strict, tmp_path / "junit.xml")).values()
    assert isinstance(case.result[0], junitparser.Failure)


def test_a_verdict_over_several_resources_has_a_suite_per_resource_and_layer(tmp_path):
    rows = [
        Row("fast", "check_handler_loads", "passed", resource="NMF"),
        Row("fast", "check_handler_loads", "failed", "it did not load", resource="BDT"),
        Row("gate", "resource_type_supported", "not supported", "Tritonserver", resource="PCA"),
    ]
    suites = {suite.name: suite for suite in junitparser.JUnitXml.fromfile(str(write_junit_xml(rows, tmp_path / "j.xml")))}
    assert set(suites) == {"dialsgate.NMF.fast", "dialsgate.BDT.fast", "dialsgate.PCA.gate"}
    assert [case.classname for case in suites["dialsgate.BDT.fast"]] == ["dialsgate.BDT.fast.packaging"]
