"""The pytest side of a finding: ``enact`` says a judged finding to pytest (the adapters' one
road), the report hook carries it unchanged, and ``--gate-summary FILE`` writes every test's
outcome as JSON (what `pytest --dials-template` found, row for row as `dialsgate check`).

For a test that is no check (a model author's own), a failure's reason is the whole exception
text (every line), followed by each exception it was raised from or during down to the root
cause, when that text is not already in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialsgate.checks import CheckCase
from dialsgate.checks.findings import Finding, Outcome, exception_chain
from dialsgate.checks.subject import ENGINE_ROOT
from dialsgate.pytest_plugin.options import settings_from_options

#: Bounds on one reason (a runaway message must not make the JSON huge); far above real ones.
MAX_REASON_CHARS = 20_000
#: ``record_property(NOTE_PROPERTY, text)`` in a passing test puts ``text`` in its verdict row.
NOTE_PROPERTY = "dialsgate_note"


def pytest_addoption(parser):
    group = parser.getgroup("dialsgate")
    group.addoption("--gate-summary", default=None, help="write test outcomes as JSON here (used by the gate)")
    group.addoption(
        "--dials-strict",
        action="store_true",
        default=False,
        help="advice rows (hardening against requests DIALS never sends) fail like failures",
    )
    group.addoption(
        "--dials-ignore-known-failures",
        action="store_true",
        default=False,
        help="judge without the [known_failures] of the template's dialsgate.toml (its rows as if not declared)",
    )


def strict_mode(config) -> bool:
    """``--dials-strict`` given, or ``strict = true`` in the settings beside the template."""
    if config.getoption("dials_strict", default=False):
        return True
    return bool(settings_from_options(config).get("strict", False))


def check_case_of(item):
    """The CheckCase a test item runs (a parameter of the layers' generated tests), or None."""
    callspec = getattr(item, "callspec", None)
    return next((value for value in (callspec.params if callspec else {}).values() if isinstance(value, CheckCase)), None)


def row_id(item) -> str:
    """The verdict row of a test item: its check case's id (``check_input_dims[Occupancy]@http``),
    or ``<module>::<test>`` for a layer's own test; never parsed back from the node id."""
    found = check_case_of(item)
    return found.id if found is not None else f"{Path(str(item.path)).stem}::{item.name}"


def enact(finding: Finding, item=None) -> None:
    """Say a finding to pytest (the adapters' one road): advice and not applicable pass, not run
    is a skip, a known failure that failed an xfail, anything else that does not pass a failure.
    The finding itself travels on the item to the report hook, unchanged."""
    if item is not None:
        item.dialsgate_finding = finding
    if finding.result in (Outcome.PASSED, Outcome.ADVICE, Outcome.NOT_APPLICABLE):
        return
    if finding.result == Outcome.NOT_RUN:
        pytest.skip(f"not run: {finding.reason}")
    if finding.result == Outcome.XFAILED:
        pytest.xfail(finding.reason)
    pytest.fail(finding.reason + (f"\n{finding.evidence}" if finding.evidence else ""), pytrace=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """The finding of a check row, as it was judged, for the gate's summary and the terminal."""
    report = yield
    report.dialsgate_check = row_id(item)
    finding = getattr(item, "dialsgate_finding", None)
    if finding is not None and call.when == "call":
        report.dialsgate_result = str(finding.result)
        report.dialsgate_reason = finding.reason
        if finding.result == Outcome.ADVICE:
            report.sections.append(("dialsgate advice", finding.reason))
    return report


def pytest_terminal_summary(terminalreporter):
    """Without a container engine: one line saying how many model-code checks did not run, and why."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if getattr(report, "dialsgate_result", None) == "not run" and f"(see {ENGINE_ROOT})" in report.dialsgate_reason
    ]
    if skipped:
        why = skipped[0].dialsgate_reason.removesuffix(f" (see {ENGINE_ROOT})")
        terminalreporter.write_line(f"dialsgate: {len(skipped)} checks that run model code not run: {why}", yellow=True)


def pytest_configure(config):
    path = config.getoption("--gate-summary", default=None)
    if path:
        config.pluginmanager.register(_Recorder(Path(path)), "dialsgate-gate-recorder")


def _exception_text(error: BaseException) -> str:
    text = str(error).strip()
    name = type(error).__name__
    return f"{name}: {text}" if text else name


def full_reason(excinfo) -> str:
    """The failure as pytest shows it (all lines), then each deeper cause not already quoted."""
    head = excinfo.exconly().strip()
    # A check's own finding speaks for itself: no "dialsgate.checks.CheckFailed: " in front of it.
    for prefix in ("dialsgate.checks.CheckFailed: ", "dialsgate.checks.base.CheckFailed: "):
        head = head.removeprefix(prefix)
    parts = [head]
    for inner in exception_chain(excinfo.value)[1:]:
        text = _exception_text(inner)
        if str(inner).strip() and str(inner).strip() in "\n".join(parts):
            continue
        parts.append(f"caused by {text}")
    reason = "\n".join(parts)
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + " [...]"


def _crash_text(report) -> str:
    """What pytest's report says went wrong (skip reason, or the crash's whole message)."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # skips: (file, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    text = "\n".join(line.rstrip() for line in text.strip().splitlines() if line.strip())
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + " [...]"


def _reason(report) -> str:
    return getattr(report, "dialsgate_reason", None) or _crash_text(report)


class _Recorder:
    def __init__(self, path: Path):
        self.path = path
        self.results: list[dict] = []
        self.deselected: list[str] = []
        self.collection_errors: list[dict] = []

    def pytest_deselected(self, items):
        self.deselected += [row_id(item) for item in items]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """Keep the whole failure text and its root cause (pytest's crash line is the first line only)."""
        report = yield
        if report.failed and call.excinfo is not None and getattr(item, "dialsgate_finding", None) is None:
            try:
                report.dialsgate_reason = full_reason(call.excinfo)
            except Exception as error:  # the reason is a courtesy: never break the run for it
                report.dialsgate_reason = f"{_crash_text(report)} (full reason unavailable: {type(error).__name__}: {error})"
        return report

    def pytest_collectreport(self, report):
        if report.failed:
            self.collection_errors.append({"nodeid": report.nodeid, "reason": _crash_text(report)})

    def pytest_runtest_logreport(self, report):
        if getattr(report, "dialsgate_result", None):
            outcome, reason = report.dialsgate_result, report.dialsgate_reason
        elif hasattr(report, "wasxfail"):
            outcome = "xpassed" if report.passed else "xfailed"
            reason = report.wasxfail or _reason(report)
        elif report.when != "call" and report.failed:
            outcome, reason = "error", f"{report.when}: {_reason(report)}"
        elif report.when == "call" or report.skipped:
            outcome, reason = report.outcome, _reason(report)
            if report.passed:  # a passing check may leave a figure for the verdict (record_property)
                reason = next((str(value) for key, value in report.user_properties if key == NOTE_PROPERTY), reason)
        else:
            return
        self.results.append(
            {
                "nodeid": report.nodeid,
                "check": getattr(report, "dialsgate_check", report.nodeid),
                "outcome": outcome,
                "reason": reason,
                "duration": round(report.duration, 3),
            }
        )

    def pytest_sessionfinish(self, session, exitstatus):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(
            json.dumps(
                {
                    "exitstatus": int(exitstatus),
                    "collected": session.testscollected,
                    "deselected": self.deselected,
                    "collection_errors": self.collection_errors,
                    "results": self.results,
                },
                indent=1,
            )
        )
