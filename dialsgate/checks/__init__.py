"""Conformance checks for a DIALS MLServer model folder, generated from its template.

Each check is a plain function ``check_<property>(subject, ...)`` that raises ``CheckFailed``
with a message naming the defect. ``fast_checks`` / ``parity_checks`` turn a contract into
``CheckCase``s with readable ids (``check_input_dims[BPix3]``), so ``pytest -k check_input_dims``
selects one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from ..contract import Contract


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


@dataclass(frozen=True)
class CheckCase:
    id: str
    function: Callable = field(repr=False)
    arguments: dict = field(default_factory=dict, repr=False)
    transport: str = "in-process"  # how its requests reach the handler (checks.signature.TRANSPORTS)

    def __call__(self, subject) -> None:
        self.function(subject, **self.arguments)


def case(function: Callable, label: str | None = None, /, **arguments) -> CheckCase:
    name = function.__name__ if label is None else f"{function.__name__}[{label}]"
    return CheckCase(name, partial(function), arguments)


def fast_checks(contract: Contract) -> list[CheckCase]:
    """Everything that runs without Docker. Model code runs in the folder's serving environment
    (the image's Python and packages, built once and cached), never in the caller's."""
    from . import image, loading, package, pickles, roundtrip, signature, static, template

    if contract.unknown_datatypes():
        # Requests cannot be built for an unknown datatype: the template checks say which field.
        return [*template.cases(contract), *static.cases(contract)]
    return [
        *template.cases(contract),
        *static.cases(contract),
        *image.cases(contract),
        *pickles.cases(contract),
        *loading.cases(contract),
        *signature.cases(contract),
        *roundtrip.cases(contract),
        *package.cases(contract),
    ]


def parity_checks(contract: Contract) -> list[CheckCase]:
    """The serving environment itself: exactly the image's versions, and a model file written with them."""
    from . import image, pickles

    return [*image.parity_cases(contract), *pickles.parity_cases(contract)]
