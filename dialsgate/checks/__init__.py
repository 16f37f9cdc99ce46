"""Conformance checks for a DIALS MLServer model folder, generated from its template.

Each check is a plain function ``check_<property>(subject, ...)`` declared with ``@check(kind=...,
concern=...)``. A **failure** check (``kind="failure"``) raises ``CheckFailed`` when the folder
breaks the template's contract or would break in DIALS: a request inside the contract (the
declared inputs, datatypes and Dims, flattened, with the declared metadata) refused, crashing or
answered with outputs not as declared. An **advice** check (``kind="advice"``) raises
``CheckAdvice`` when the handler is not hardened against a request outside the contract, which
DIALS never sends (a missing input, a wrong datatype, NaN, an empty batch, ...): recorded as
"advice", it fails the gate only under ``--strict``. ``fast_checks`` / ``parity_checks`` turn a
contract into ``CheckCase``s with readable ids (``check_input_dims[Occupancy]``), so
``pytest -k check_input_dims`` selects one. docs/checks.md lists every check with its kind.
"""

from __future__ import annotations

from dialsgate.checks import explore, folder, image, loading, package, pickles, roundtrip, server, signature, static, template
from dialsgate.checks.base import (
    ADVICE,
    CONCERNS,
    KINDS,
    PASSING_RESULTS,
    REGISTRY,
    CheckAdvice,
    CheckCase,
    CheckFailed,
    CheckNotApplicable,
    CheckNotRun,
    case,
    check,
    check_of,
    declared,
)
from dialsgate.contract.template import Contract

__all__ = [
    "ADVICE", "CONCERNS", "KINDS", "PASSING_RESULTS", "REGISTRY", "CheckAdvice", "CheckCase", "CheckFailed",
    "CheckNotApplicable", "CheckNotRun", "case", "check", "check_of", "declared", "fast_checks", "parity_checks", "server_checks",
]  # fmt: skip


def fast_checks(contract: Contract) -> list[CheckCase]:
    """Everything that needs no served model. Model code runs in the folder's worker container
    (the serving image, sandboxed: ``container.worker``), never in the caller's interpreter."""
    if contract.unknown_datatypes() or contract.oversized_inputs():
        # Requests cannot be built for an unknown datatype or beyond the elements cap: the
        # template checks say which field.
        return [*template.cases(contract), *folder.cases(contract), *static.cases(contract)]
    return [
        *template.cases(contract),
        *folder.cases(contract),
        *static.cases(contract),
        *image.cases(contract),
        *pickles.cases(contract),
        *loading.cases(contract),
        *signature.cases(contract),
        *roundtrip.cases(contract),
        *package.cases(contract),
        *explore.cases(contract),  # last: a request it sends beyond a limit stops the worker
    ]


def parity_checks(contract: Contract) -> list[CheckCase]:
    """Where model code ran: exactly the image's versions, and a model file written with them."""
    return [*image.parity_cases(contract), *pickles.parity_cases(contract)]


#: The fresh-process questions of the checks, in the order one process answers them: the package
#: list first (nothing imported), the model file loaded before anything resolves its globals (a
#: warning of an import is heard once). (The clean round trip's fresh process, in the worker
#: container, is the handler's own worker: ``checks.roundtrip``.)
_QUESTIONS = {
    "check_serving_environment_matches_image": image.installed_question,
    "check_model_file_loads_with_image_versions": pickles.strict_load_question,
    "check_pickle_globals_resolvable": pickles.resolve_question,
}


def early_questions(subject, layers: tuple[str, ...], selected: set[str] | None = None) -> list:
    """What the checks of ``layers`` on ``subject`` (only the case ids in ``selected``, when given:
    ``pytest -k``) will ask fresh worker processes, asked before them (``Subject.ask_early``); a
    question whose check would not ask it is left out. The in-process exploration's requests come
    with them, sent once the handler has loaded (``HandlerWork``), then the handler's answers the
    server layer's load check compares with (the worker is idle while the served model starts)."""
    names = {case.id for layer in layers if layer in ("fast", "parity") for case in LAYER_CHECKS[layer](subject.contract)}
    if selected is not None:
        names &= selected
    asked = []
    for name, question in _QUESTIONS.items():
        if name not in names:
            continue
        try:
            made = question(subject)
        except (CheckNotRun, CheckNotApplicable, CheckFailed):
            continue  # its check stops before asking, and says why
        if made is not None:
            asked.append(made)
    if names & {explore.check_contract_explored.__name__, explore.check_contract_explored_finite.__name__}:
        asked.append(explore.early_exploration(subject))
    load_check = server.check_concurrent_clients_get_handler_answers.__name__
    if "server" in layers and (selected is None or load_check in selected):
        asked.append(server.early_load_answers(subject))  # after the exploration: its requests come first
    return asked


def server_checks(contract: Contract) -> list[CheckCase]:
    """The folder served by MLServer in its image, asked as DIALS asks it (``checks.server``)."""
    return server.server_cases(contract)


LAYER_CHECKS = {"fast": fast_checks, "parity": parity_checks, "server": server_checks}
