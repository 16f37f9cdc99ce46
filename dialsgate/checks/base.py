"""What a check is: its result exceptions, its kind and concern (declared with ``@check`` where
the check is defined, kept in ``REGISTRY``), and ``CheckCase``, one check bound to its arguments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial


class CheckFailed(AssertionError):
    """A conformance check found a defect; the message says which and where."""


class CheckAdvice(AssertionError):
    """Hardening against a request outside the template's contract (DIALS never sends it), or
    other good practice: shown with its reason, fails the gate only under ``--strict``."""


class CheckNotApplicable(Exception):  # noqa: N818  (a result, not an error)
    """The check does not apply to this folder (e.g. a pickle audit of an ONNX file): no failure, no skip."""


class CheckNotRun(Exception):  # noqa: N818  (a result, not an error)
    """The check could not run because another row failed first; ``root`` names that row."""

    def __init__(self, root: str, reason: str):
        super().__init__(f"{reason} (see {root})")
        self.root = root


#: Results of a verdict row that do not fail the gate (advice only outside strict mode).
PASSING_RESULTS = ("passed", "not applicable")
ADVICE = "advice"

#: The two kinds of finding. failure: the folder breaks the contract or would break in DIALS;
#: advice: hardening against requests outside the contract (DIALS never sends them).
KINDS = ("failure", "advice")
#: What a check is about (the report groups its rows by concern; dialsgate.report.concerns).
CONCERNS = ("template", "signature", "robustness", "packaging", "versions", "server")

#: {check function name: function} of every check declared with ``@check``.
REGISTRY: dict[str, Callable] = {}


def check(*, kind: str, concern: str, runs_model_code: bool) -> Callable[[Callable], Callable]:
    """Declare a check function's kind and concern where it is defined (data on the function).

    ``runs_model_code``: the row rests on what the folder's own code did or answered (its
    handler, its modules, what its pickle builds), in the sandbox: that code can tell it is
    being tested and answer otherwise, so the verdict marks such a row as forgeable by it."""
    if not isinstance(runs_model_code, bool):
        raise TypeError("runs_model_code: True or False (does the row rest on the folder's own code?)")
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: choose from {KINDS}")
    if concern not in CONCERNS:
        raise ValueError(f"concern {concern!r}: choose from {CONCERNS}")

    def declare(function: Callable) -> Callable:
        if not function.__name__.startswith("check_"):
            raise ValueError(f"{function.__name__}: a check's name starts with check_")
        function.dialsgate_kind = kind
        function.dialsgate_concern = concern
        function.dialsgate_runs_model_code = runs_model_code
        REGISTRY[function.__name__] = function
        return function

    return declare


def check_of(check_id: str) -> Callable | None:
    """The registered check function of a row id (``check_input_dims[Occupancy]@http`` -> check_input_dims)."""
    return REGISTRY.get(check_id.split("[", 1)[0].split("@", 1)[0])


def declared(function: Callable) -> tuple[str, str]:
    """(kind, concern) of a check function; TypeError when it was not declared with ``@check``."""
    kind, concern = getattr(function, "dialsgate_kind", None), getattr(function, "dialsgate_concern", None)
    if kind is None or concern is None:
        raise TypeError(f"{getattr(function, '__name__', function)!r} is not declared with @check(kind=..., concern=...)")
    return kind, concern


@dataclass(frozen=True)
class CheckCase:
    id: str
    function: Callable = field(repr=False)
    arguments: dict = field(default_factory=dict, repr=False)
    transport: str = "in-process"  # how its requests reach the handler (checks.signature.TRANSPORTS)
    kind: str = "failure"  # KINDS
    concern: str = "signature"  # CONCERNS

    def __call__(self, subject):
        return self.function(subject, **self.arguments)


def case(function: Callable, label: str | None = None, /, **arguments) -> CheckCase:
    """One check case; the function must be declared with ``@check`` (its kind and concern)."""
    kind, concern = declared(function)
    name = function.__name__ if label is None else f"{function.__name__}[{label}]"
    return CheckCase(name, partial(function), arguments, kind=kind, concern=concern)
