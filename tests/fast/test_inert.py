"""A folder's strings are inert in every output of the gate: the terminal verdict, JUnit XML, the
HTML report and verdict.json, fed rows whose check ids and reasons carry a hostile template's
Handler and input names (escape sequences that would clear the screen and print a green
"GATE PASSED", CR, backspace, NUL, DEL, a C1 CSI, a bidi override)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import junitparser
import pytest

from dialsgate.gate import cli, command
from dialsgate.gate.junit import write_junit_xml
from dialsgate.gate.runner import Row, Verdict
from dialsgate.gate.terminal import InertStream, relay
from dialsgate.gate.verdict import print_verdict, write_verdict_json
from dialsgate.inert import inert

HANDLER = "app.\x1b[2J\x1b[H\x1b[32mGATE PASSED\x1b[0m"
INPUT = "Occupancy\r\b\b\b\x00\x01\x02\x03\x04\x05\x06\x07\x08\x7f\x9b31m\u202eDESSAP\u2066"
HOSTILE = [
    Row("fast", "check_handler_class_defined", "failed", f"template Handler {HANDLER!s}: no class in app.py"),
    Row("fast", f"check_input_dims[{INPUT}]", "not run", f"handler {HANDLER} did not load (see check_handler_loads)"),
    Row("fast", "check_handler_loads", "failed", f"ModuleNotFoundError: {HANDLER}\nTraceback: {INPUT}\x1b]0;title\x07"),
    Row("fast", f"check_input_required[{INPUT}]", "advice", f"input {INPUT} missing was answered"),
    Row("server", f"check_input_dims[{INPUT}]@http", "passed", ""),
]

#: Characters no output may carry raw (newline and tab are the writers' own layout).
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: XML 1.0's Char production (https://www.w3.org/TR/xml/#charsets), written out here on its own.
XML_CHAR = re.compile("^[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")


def test_inert_shows_each_control_as_a_visible_escape():
    assert inert(HANDLER) == "app.\\x1b[2J\\x1b[H\\x1b[32mGATE PASSED\\x1b[0m"
    assert inert("a\rb\bc\x00d\x7fe\x9bf\u202eg\u2069h") == "a\\x0db\\x08c\\x00d\\x7fe\\x9bf\\u202eg\\u2069h"
    assert inert("line one\n\tline two, é, 😀") == "line one\n\tline two, é, 😀"
    assert inert("\ud800\ufffe") == "\\ud800\\ufffe"
    for text in (HANDLER, INPUT):
        assert inert(inert(text)) == inert(text)
        assert not RAW_CONTROL.search(inert(text)) and XML_CHAR.match(inert(text))


def test_every_character_is_either_kept_or_escaped_into_xml_chars():
    every = "".join(chr(code) for code in range(0x3000)) + "\ud800\udfff\ufffe\uffff\U0010ffff"
    out = inert(every)
    assert XML_CHAR.match(out) and not RAW_CONTROL.search(out)
    assert "\\x1b" in out and "\\x9b" in out and "\\u202e" in out and "é" in out


def test_terminal_verdict_carries_no_escape_sequence(capsys):
    with cli.inert_terminal():
        print_verdict(HOSTILE, columns=120, verbose=True)
    out = capsys.readouterr().out
    assert "\x1b" not in out and not RAW_CONTROL.search(out)
    assert "\\x1b[32mGATE PASSED\\x1b[0m" in out and "\\u202eDESSAP" in out


def test_the_gate_command_prints_nothing_raw(monkeypatch, capsys, tmp_path):
    """`dialsgate check` end to end on a fabricated verdict: every line it prints, the report error
    included, goes through the inert terminal."""
    monkeypatch.setattr(command, "run_gate", lambda args, extra: Verdict(HOSTILE, None))
    (tmp_path / "template.yaml").write_text("Resources: {}\n")  # read by nobody here: the run is fabricated
    args = cli.check_parser().parse_args([str(tmp_path / "template.yaml"), "--report", str(tmp_path / "r"), "-v"])
    assert cli.check(args, []) == 1
    out = capsys.readouterr().out
    assert "GATE FAILED" in out and "\x1b" not in out and not RAW_CONTROL.search(out)
    document = (tmp_path / "r" / "verdict.json").read_bytes()
    assert re.fullmatch(rb"[\x20-\x7e\n]*", document), "verdict.json holds a raw control or non-ASCII byte"
    assert [row["check"] for row in json.loads(document)["rows"]] == [row.check for row in HOSTILE]


def test_a_layers_output_is_relayed_inert(capfd):
    """What a layer's pytest and the worker's model code print (bytes, UTF-8 or not) arrives inert."""
    payload = b"ok\n\x1b[2J\x1b[32mGATE PASSED\x1b[0m\r\x9b\xc2\x9b\xe2\x80\xae\xff tail\n"
    child = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.write(1, {payload!r}); os.write(2, b'\\x1b[31merr\\n')"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = io.StringIO()
    with child.stdout:
        relay(child.stdout.fileno(), out)
    child.wait()
    text = out.getvalue()
    assert "\x1b" not in text and not RAW_CONTROL.search(text)
    assert "\\x1b[32mGATE PASSED" in text and "\\x9b" in text and "\\u202e" in text and "\\xff tail" in text
    assert "\\x1b[31merr" in text


def test_inert_stream_reports_what_it_was_given():
    target = io.StringIO()
    stream = InertStream(target)
    assert stream.write("\x1b[2J") == 4
    assert target.getvalue() == "\\x1b[2J"


def test_junit_xml_stays_valid_xml_and_junitparser_reads_it(tmp_path):
    path = write_junit_xml(HOSTILE, tmp_path / "junit.xml", {"template": f"/tmp/{INPUT}/template.yaml", "strict": False})
    data = path.read_bytes()
    text = data.decode("utf-8")
    assert XML_CHAR.match(text) and not RAW_CONTROL.search(text)
    ET.fromstring(data)  # a strict XML 1.0 parser (expat)
    cases = {case.name: case for suite in junitparser.JUnitXml.fromfile(str(path)) for case in suite}
    assert inert(f"check_input_dims[{INPUT}]") in cases
    (failure,) = cases["check_handler_loads"].result
    assert "\\x1b[32mGATE PASSED" in failure.text and "\\x1b[32mGATE PASSED" in failure.message


def test_without_escaping_the_same_rows_would_break_the_xml(tmp_path):
    """The check above can fail: raw, these characters are not XML 1.0."""
    element = ET.Element("testcase", name=INPUT)
    raw = ET.tostring(element)
    with pytest.raises(ET.ParseError):
        ET.fromstring(raw)


def test_verdict_json_escapes_every_control_and_keeps_the_exact_strings(tmp_path):
    path = write_verdict_json(HOSTILE, tmp_path / "verdict.json", {"handler": HANDLER})
    data = path.read_bytes()
    assert re.fullmatch(rb"[\x20-\x7e\n]*", data)
    document = json.loads(data)
    assert document["rows"][0]["reason"] == HOSTILE[0].reason and document["provenance"]["handler"] == HANDLER


def test_report_html_shows_the_rows_inert():
    from dialsgate.report.facts import PackageFacts, PackageListing, PictureFacts, ReportFacts, ServingFacts, verdict_facts
    from dialsgate.report.render import render

    facts = ReportFacts(
        name=f"corpus {INPUT}",
        header=[("handler", HANDLER, True), ("model name", INPUT, False)],
        generated="now",
        verdict=verdict_facts([{"layer": r.layer, "check": r.check, "result": r.result, "reason": r.reason} for r in HOSTILE]),
        batch=None,
        pictures=PictureFacts(sentence=f"hook {HANDLER} failed", notes=[INPUT]),
        serving=ServingFacts(pins_file="pins", packages=[], image_name=HANDLER, image_error=INPUT),
        package=PackageFacts(
            model_file=f"/x/{INPUT}.joblib",
            model_sha256=None,
            listing=PackageListing(origin="CodeUri", folder="/x", files=[(f"{INPUT}.py", 1, "0" * 64)]),
            total_size="1 B",
        ),
        provenance=[("template", f"/x/{INPUT}/template.yaml", True)],
    )
    html = render(facts)
    assert "\x1b" not in html and not RAW_CONTROL.search(html)
    assert "\\x1b[32mGATE PASSED\\x1b[0m" in html and "\\u202eDESSAP" in html
    assert "<script>" not in render(dataclasses.replace(facts, name="<script>alert(1)</script>"))  # still autoescaped


def test_a_handler_that_is_no_class_name_is_named_not_crashing():
    """dism-core's class search builds a regex from the name: the check says what is wrong instead."""
    from pathlib import Path

    from dialsgate.checks import CheckFailed
    from dialsgate.checks.template import check_handler_class_defined
    from dialsgate.contract.template import load_contract

    folder = Path(__file__).resolve().parents[1] / "gate" / "corpus" / "handler_name_escape_sequences"
    contract = load_contract(folder / "template.yaml")
    assert contract.handler == HANDLER
    with pytest.raises(CheckFailed, match="is not a Python class name"):
        check_handler_class_defined(SimpleNamespace(contract=contract, require_plain_folder=lambda: None))
