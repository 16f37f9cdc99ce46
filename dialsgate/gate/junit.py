"""The verdict as JUnit XML (``--junit-xml PATH``): one test case per row of every layer, so
GitLab and GitHub show the gate's rows in a merge request.

A failure (failed, xfailed, deselected, not supported, ...) is ``<failure>``, an error
``<error>``, a row not run behind a root row ``<skipped>`` naming that row, not applicable
``<skipped>``; advice is a passing case with the advice in its ``<system-out>`` (under strict an
advice row is already a failed row of the verdict, so it is a ``<failure>``).

Every text and attribute is made inert first (``dialsgate.inert``): the file stays valid XML 1.0
whatever a folder's strings hold. Written with the standard library's ElementTree: the format is a handful of elements, and the
gate should not need another dependency for it.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path

from dialsgate.checks import ADVICE
from dialsgate.inert import inert
from dialsgate.report.concerns import concern_of

SUITE_NAME = "dialsgate"


def _outcome(case: ET.Element, row) -> str:
    """Adds the row's outcome element to ``case``; returns the counter it belongs to."""
    first_line = (row.reason.strip().splitlines() or [""])[0][:300]
    if row.result == "passed":
        if row.reason:
            ET.SubElement(case, "system-out").text = row.reason
        return "passed"
    if row.result == ADVICE:
        ET.SubElement(case, "system-out").text = f"advice: {row.reason}"
        return "passed"
    if row.result in ("not run", "not applicable"):
        ET.SubElement(case, "skipped", message=f"{row.result}: {first_line}").text = row.reason
        return "skipped"
    if row.result == "error":
        ET.SubElement(case, "error", message=first_line, type="error").text = row.reason
        return "errors"
    ET.SubElement(case, "failure", message=first_line, type=row.result).text = row.reason
    return "failures"


def junit_xml(rows, provenance: dict | None = None) -> ET.ElementTree:
    """One ``<testsuite>`` per layer, one ``<testcase>`` per row (classname: dialsgate.<layer>.<concern>);
    a verdict over several resources: a suite per resource and layer (dialsgate.<resource>.<layer>)."""
    root = ET.Element("testsuites", name=SUITE_NAME)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites: dict[str, tuple[ET.Element, dict[str, int]]] = {}
    several = len({getattr(row, "resource", "") for row in rows} - {""}) > 1
    for row in rows:
        resource = getattr(row, "resource", "")
        group = f"{SUITE_NAME}.{resource}.{row.layer}" if several and resource else f"{SUITE_NAME}.{row.layer}"
        if group not in suites:
            suite = ET.SubElement(root, "testsuite", name=group)
            suites[group] = (suite, {"tests": 0, "failures": 0, "errors": 0, "skipped": 0})
        suite, counts = suites[group]
        case = ET.SubElement(suite, "testcase", classname=f"{group}.{concern_of(row.layer, row.check)}", name=row.check, time="0")
        counter = _outcome(case, row)
        for tally in (counts, totals):
            tally["tests"] += 1
            if counter != "passed":
                tally[counter] += 1
    for suite, counts in suites.values():
        suite.attrib.update({key: str(value) for key, value in counts.items()})
    root.attrib.update({key: str(value) for key, value in totals.items()})
    if provenance:
        properties = ET.Element("properties")
        for key, value in provenance.items():
            text = value if not isinstance(value, dict) else ", ".join(f"{k}={v}" for k, v in value.items())
            ET.SubElement(properties, "property", name=str(key), value=str(text))
        for suite, _ in suites.values():
            suite.insert(0, copy.deepcopy(properties))
    _make_inert(root)
    return ET.ElementTree(root)


def _make_inert(root: ET.Element) -> None:
    """Every text and attribute value made inert (``dialsgate.inert``): a row's check id and
    reason carry the folder's strings, and a control character in them would make the file
    invalid XML 1.0, which GitLab drops whole."""
    for element in root.iter():
        if element.text is not None:
            element.text = inert(element.text)
        for key, value in element.attrib.items():
            element.attrib[key] = inert(value)


def write_junit_xml(rows, path: Path, provenance: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = junit_xml(rows, provenance)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path
