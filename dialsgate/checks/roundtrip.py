"""Clean-interpreter round trip: the server folder alone, plus site-packages, must be enough.

The seed deployment's joblib loaded only where the author's repository was importable; in the
serving container only the CodeUri folder exists. So the folder is loaded alone in a new
``python -I`` of the image's Python and packages, whose import path is that folder plus
site-packages, with the repository's own packages proven unimportable, the model file loaded
strictly, then the handler, which must answer the reference request.

In the worker container the folder is the only folder of the host there is, and the handler's own
worker is such a process: it is isolated and looks before it loads (``WorkerHandler(clean=...)``),
and its answer to the reference request is the round trip's. (A second process loading the
handler beside it was a false alarm for a handler that binds a port in ``load()``, which only
MLServer's model worker runs.) On the host (``--no-container``) the folder is copied away first
and loaded in a process of its own.
"""

from __future__ import annotations

from dialsgate.checks.base import CheckFailed, case, check
from dialsgate.checks.signature import _same_outputs
from dialsgate.checks.subject import Question, explain_load_error
from dialsgate.transports.worker import WorkerFailed


@check(kind="failure", concern="packaging", runs_model_code=True)
def check_clean_interpreter_round_trip(subject) -> None:
    """The server folder, alone, loads and answers in a clean ``python -I`` of the image's packages."""
    subject.require_safe_model_file()
    expected = subject.reference_outcome  # the handler loaded in the worker first (else: not run, see check_handler_loads)
    if subject.runtime.kind == "container":
        # The handler's worker was the clean process: what it saw, and its own answer.
        folder = subject.runtime.folder
        seen = subject.handler.clean_facts
        if not isinstance(seen, dict):  # passed only on what it was seen to be, never on silence
            raise CheckFailed(f"server folder alone ({folder}): the handler's worker did not say what it saw before it loaded")
        _judge(subject, folder, seen)
        if expected.status != 200:
            raise CheckFailed(f"server folder alone ({folder}) failed: HTTP {expected.status}: {expected.error}")
        return
    with subject.runtime.alone() as (folder, model_file):
        try:
            result = subject.ask_fresh(clean_question(subject, folder, model_file))
        except WorkerFailed as error:
            raise CheckFailed(f"clean interpreter crashed: {error}") from None
    _judge(subject, folder, result)
    if expected.status != 200:
        raise CheckFailed(f"in-process handler failed on the reference batch: {expected.error}")
    _same_outputs(expected.response, result["response"], "clean interpreter vs in-process")


def _judge(subject, folder: str, seen: dict) -> None:
    """What the clean process saw: the repository's modules out of reach, the folder's own
    modules from the folder, the model file and the handler loaded."""
    contract = subject.contract
    if seen.get("importable_forbidden"):
        raise CheckFailed(f"repository modules importable in the clean interpreter: {seen['importable_forbidden']}")
    outside = {name: origin for name, origin in seen.get("origins", {}).items() if not str(origin).startswith(str(folder))}
    if outside:
        raise CheckFailed(f"modules of the server folder were imported from elsewhere: {outside}")
    if "error" in seen:
        raise CheckFailed(
            f"server folder alone ({folder}) failed: {explain_load_error(seen['error'], folder, contract.code_dir, contract.model_file.name)}\n"
            f"{seen.get('traceback', '')[-2500:]}"
        )


def clean_question(subject, folder: str, model_file: str) -> Question:
    """The clean-interpreter round trip's spec, for the server folder alone at ``folder`` (a process
    of its own: ``--no-container``)."""
    contract = subject.contract
    subject.require_safe_model_file()
    spec = {
        "folder": folder,
        "model_file": model_file,
        "handler": contract.handler,
        "name": contract.name,
        "spawn": subject.served_with_workers,  # loaded as MLServer will serve it
        "request": subject.reference_body,
        **subject.clean_round_trip_spec(),
    }
    # A fresh process: nothing imported before it.
    return Question(spec, "the clean-interpreter round trip", ("--clean",))


def cases(contract):
    return [case(check_clean_interpreter_round_trip)]
