"""A template written to take over the terminal of whoever gates it (corpus folder
handler_name_escape_sequences: escape sequences, controls and a bidi override in its Handler and
input name) leaves every output of `dialsgate check` inert: the printed bytes hold no ESC and no
control character but newline and tab, junit.xml is XML 1.0 that junitparser reads, the report
holds no raw control character. The fast layer only: the strings reach every writer there."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser

REPOSITORY = Path(__file__).resolve().parents[2]
FOLDER = REPOSITORY / "tests" / "gate" / "corpus" / "handler_name_escape_sequences"

#: Raw bytes of a control character other than newline and tab: C0, DEL, C1 (UTF-8 encoded, or
#: as a lone byte), the bidi overrides and isolates (UTF-8 encoded).
RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]")


def test_every_output_of_the_gate_is_inert(tmp_path):
    copy = tmp_path / FOLDER.name
    shutil.copytree(FOLDER, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [tmp_path, copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    report, junit = tmp_path / "report", tmp_path / "junit.xml"
    finished = subprocess.run(
        [sys.executable, "-m", "dialsgate", "check", str(copy / "template.yaml"), "--layers", "fast", "-v",
         "--report", str(report), "--junit-xml", str(junit)],
        cwd=REPOSITORY, capture_output=True, timeout=900,
    )  # fmt: skip
    printed = finished.stdout + finished.stderr
    tail = printed[-4000:].decode("utf-8", "replace")
    assert finished.returncode == 1 and b"GATE FAILED" in printed, tail
    assert b"\x1b" not in printed and not RAW_CONTROL.search(printed), tail
    # The hostile strings were printed, as visible escapes (so the check above saw them).
    assert b"app.\\x1b[2J\\x1b[H\\x1b[32mGATE PASSED\\x1b[0m" in printed, tail

    data = junit.read_bytes()
    assert not RAW_CONTROL.search(data)
    ET.fromstring(data)
    cases = [case for suite in junitparser.JUnitXml.fromfile(str(junit)) for case in suite]
    assert any(case.name.startswith("check_input_dims[OccupancyBPix1\\x0d\\x08") for case in cases)

    html = (report / "index.html").read_bytes()
    assert not RAW_CONTROL.search(html) and b"\\x1b[32mGATE PASSED" in html
    verdict = (report / "verdict.json").read_bytes()
    assert re.fullmatch(rb"[\x20-\x7e\n]*", verdict), "verdict.json holds a raw control or non-ASCII byte"
