"""pytest plugin: ``--gate-summary FILE`` writes every test outcome as JSON for the gate.

The gate needs more than pytest's exit code: a skipped, xfailed or deselected check counts as
a failure there, and each row of the verdict needs a one-line reason.
"""

from __future__ import annotations

import json
from pathlib import Path


def pytest_addoption(parser):
    parser.getgroup("dialsgate").addoption("--gate-summary", default=None, help="write test outcomes as JSON here (used by the gate)")


def pytest_configure(config):
    path = config.getoption("--gate-summary", default=None)
    if path:
        config.pluginmanager.register(_Recorder(Path(path)), "dialsgate-gate-recorder")


def _one_line(report) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # skips: (file, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:400] if lines else ""


class _Recorder:
    def __init__(self, path: Path):
        self.path = path
        self.results: list[dict] = []
        self.deselected: list[str] = []
        self.collection_errors: list[dict] = []

    def pytest_deselected(self, items):
        self.deselected += [item.nodeid for item in items]

    def pytest_collectreport(self, report):
        if report.failed:
            self.collection_errors.append({"nodeid": report.nodeid, "reason": _one_line(report)})

    def pytest_runtest_logreport(self, report):
        if hasattr(report, "wasxfail"):
            outcome = "xpassed" if report.passed else "xfailed"
            reason = report.wasxfail or _one_line(report)
        elif report.when != "call" and report.failed:
            outcome, reason = "error", f"{report.when}: {_one_line(report)}"
        elif report.when == "call" or report.skipped:
            outcome, reason = report.outcome, _one_line(report)
        else:
            return
        self.results.append({"nodeid": report.nodeid, "outcome": outcome, "reason": reason, "duration": round(report.duration, 3)})

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
