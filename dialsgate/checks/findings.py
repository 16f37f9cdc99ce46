"""A check's result as a value (``Finding``), and ``judge``: the one place where a check case is
run and what it raised becomes a finding. ``dialsgate.run`` and the pytest adapters both call it,
so a row means the same wherever it was produced.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from enum import Enum

from dialsgate.checks.base import CheckAdvice, CheckCase, CheckNotApplicable, CheckNotRun, check_of

#: Bounds on one reason and its evidence (a runaway message must not make the verdict huge).
MAX_REASON_CHARS = 20_000
MAX_CHAIN = 10
#: Transports whose requests reach the handler without a served model (the worker container).
LOCAL_TRANSPORTS = ("in-process",)
#: A known failure declared for an advice row is accepted as advice (also under strict), marked so.
KNOWN_PREFIX = "known: "


class Outcome(str, Enum):
    """What became of one check on one resource. A ``str``: rows compare and serialise as text."""

    PASSED = "passed"
    FAILED = "failed"
    ADVICE = "advice"
    NOT_APPLICABLE = "not applicable"
    NOT_RUN = "not run"
    NOT_SUPPORTED = "not supported"
    #: The check itself broke (an exception that is no finding): the gate cannot pass.
    ERROR = "error"
    #: A declared known failure that failed (strict xfail): the gate refuses it.
    XFAILED = "xfailed"
    #: A declared known failure that passed: the declaration is stale, the gate refuses it.
    XPASSED = "xpassed"

    def __str__(self) -> str:
        return self.value


#: Outcomes that do not fail the gate (advice only outside strict, where it is already failed).
PASSING = (Outcome.PASSED, Outcome.NOT_APPLICABLE, Outcome.ADVICE)


@dataclass
class Finding:
    """One row of the verdict: a check on one resource, in one layer, over one transport."""

    layer: str
    check: str
    result: Outcome | str
    reason: str = ""
    resource: str = ""
    transport: str = ""
    kind: str = ""
    concern: str = ""
    #: The row whose failure kept this one from running (``not run`` only).
    root: str | None = None
    #: Longer support for the reason: a traceback, a container log tail (report, verdict.json, -v).
    evidence: str = ""
    #: The row rests on the folder's own code, which could forge it (None: what the check declares).
    forgeable: bool | None = None
    duration: float = 0.0

    def __post_init__(self):
        try:
            self.result = Outcome(str(self.result))
        except ValueError:
            pass  # an older verdict.json's outcome: kept as its text
        if self.forgeable is None:
            function = check_of(self.check)
            self.forgeable = bool(function is not None and function.dialsgate_runs_model_code)

    @property
    def passed(self) -> bool:
        """Does not fail the gate: passed, not applicable, or advice (failed already under strict)."""
        return self.result in PASSING


def exception_chain(error: BaseException | None) -> list[BaseException]:
    """``error`` and the exceptions behind it, outermost first, the root cause last."""
    chain, seen = [], set()
    while error is not None and id(error) not in seen and len(chain) < MAX_CHAIN:
        chain.append(error)
        seen.add(id(error))
        error = error.__cause__ if error.__cause__ is not None else error.__context__
    return chain


def exception_name(error: BaseException) -> str:
    """``KeyError``, ``re.error``: a builtin by its name, another by its module (a private module's
    by its name alone, ``ValidationError``), as a reader finds it."""
    kind = type(error)
    module = kind.__module__ or ""
    if module == "builtins" or module.startswith("_") or "._" in module:
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"


def reason_of(error: BaseException) -> str:
    """The exception's whole text (dism-core's pydantic errors name the field on their last
    lines), then each deeper cause not already quoted. A check's own finding speaks for itself;
    any other exception is named by its type."""
    own = isinstance(error, AssertionError) and type(error).__name__ in ("CheckFailed", "CheckAdvice")
    text = str(error).strip()
    parts = [text if own else (f"{exception_name(error)}: {text}" if text else exception_name(error))]
    for inner in exception_chain(error)[1:]:
        inner_text = str(inner).strip()
        if inner_text and inner_text in "\n".join(parts):
            continue
        parts.append(f"caused by {exception_name(inner)}: {inner_text}" if inner_text else f"caused by {exception_name(inner)}")
    reason = "\n".join(parts)
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + " [...]"


def judge(
    case: CheckCase,
    subject,
    *,
    layer: str,
    resource: str = "",
    strict: bool = False,
    known: dict[str, str] | None = None,
) -> Finding:
    """Run ``case`` on ``subject`` and say what became of it.

    A check returns nothing (or a figure to record, as text) or raises its result: advice
    (a failure under strict, or raised by a failure check), not applicable, not run (with its
    root), a failure. ``known``: the author's declared known failures {check id: reason}: a
    failure check that fails is ``xfailed``, one that passes ``xpassed`` (both refused); an
    advice check's advice is accepted as advice, marked known, under strict too."""
    known = known or {}
    declared = known.get(case.id)
    row = Finding(
        layer, case.id, Outcome.PASSED, resource=resource, transport=case.transport, kind=case.kind, concern=case.concern,
        forgeable=getattr(getattr(case.function, "func", case.function), "dialsgate_runs_model_code", None),
    )  # fmt: skip
    started = time.perf_counter()
    try:
        if row.forgeable and case.transport in LOCAL_TRANSPORTS:
            subject.wait_for_handler_work()  # the early work's requests first, all of them (Subject)
        note = case(subject if case.transport in LOCAL_TRANSPORTS else subject.over_transport(case.transport))
    except CheckAdvice as error:
        text = reason_of(error)
        if case.kind == "failure":
            row.result, row.reason = Outcome.FAILED, f"{text} (advice raised by {case.id}, a failure check: it fails)"
        elif declared is not None:
            row.result, row.reason = Outcome.ADVICE, f"{KNOWN_PREFIX}{declared}: {text}"
        elif strict:
            row.result, row.reason = Outcome.FAILED, f"advice, failing under strict: {text}"
        else:
            row.result, row.reason = Outcome.ADVICE, text
    except CheckNotApplicable as error:
        row.result, row.reason = Outcome.NOT_APPLICABLE, str(error).strip()
    except CheckNotRun as error:
        row.result, row.reason, row.root = Outcome.NOT_RUN, str(error).strip(), error.root
    except AssertionError as error:  # CheckFailed, or a plain assert in a check
        row.result, row.reason = Outcome.FAILED, reason_of(error)
    except Exception as error:  # the check broke: an error row, never a pass
        row.result, row.reason = Outcome.ERROR, reason_of(error)
        row.evidence = "".join(traceback.format_exception(error))[-MAX_REASON_CHARS:]
    else:
        row.reason = note if isinstance(note, str) else ""
    row.duration = round(time.perf_counter() - started, 3)
    if declared is not None:  # a fix is noticed: the row fails until the declaration is removed
        if row.result == Outcome.FAILED:
            row.result, row.reason = Outcome.XFAILED, f"{declared} (known failure: {row.reason})"
        elif row.result == Outcome.PASSED:
            row.result, row.reason = Outcome.XPASSED, f"declared a known failure ({declared}) but passed: remove it"
    return row
