"""Pickle audit: judged by danger and by resolution, not by a fixed allowlist.

A global of the model file passes when it resolves from the server folder or from a package of
the image (scikit-learn estimators are normal). It fails, named, when it is a code-execution or
I/O primitive (``pickle-danger.toml``), or when it resolves nowhere. The walk that lists the
globals never calls any of them (``pickle_audit``); resolution imports modules and looks names
up in the serving environment, without unpickling.
"""

from __future__ import annotations

from ..endpoint import run_once
from . import CheckFailed, case


def check_pickle_globals_safe(subject) -> None:
    """No code-execution or I/O primitive (os.system, subprocess, eval, open...) in the model file."""
    audit = subject.pickle_audit
    dangerous = audit.dangerous()
    if dangerous:
        listed = "; ".join(f"{module}.{name} ({danger.why})" for module, name, danger in dangerous)
        raise CheckFailed(
            f"{subject.contract.model_file.name} references dangerous globals: {listed}. It was not loaded by any check."
        )
    if not audit.globals:
        raise CheckFailed(f"no global found in {subject.contract.model_file}: not a joblib/pickle file? ({audit.error})")


def check_pickle_globals_resolvable(subject) -> None:
    """Every global resolves from the server folder plus the image's packages, at the image's versions."""
    contract = subject.contract
    subject.require_safe_model_file()
    wanted = subject.pickle_audit.to_resolve()
    answer = run_once(subject.environment, "resolve", folder=str(contract.code_dir), globals=wanted)
    if answer.get("failed"):
        raise CheckFailed(f"resolving the globals of {contract.model_file.name} failed: {answer['error']}")
    if answer["unresolved"]:
        listed = "; ".join(f"{name}: {reason}" for name, reason in answer["unresolved"].items())
        raise CheckFailed(
            f"{contract.model_file.name} references globals that resolve neither from the server folder {contract.code_dir} "
            f"nor from the image's packages ({subject.profile.name}): {listed}"
        )


def check_model_file_loads_with_image_versions(subject) -> None:
    """The model file was written with the image's versions: it loads without version warnings.

    A joblib written under numpy 2 references ``numpy._core``; one written under another
    scikit-learn raises InconsistentVersionWarning naming both versions. Either may load today
    and misbehave in DIALS.
    """
    contract = subject.contract
    subject.require_safe_model_file()
    answer = run_once(
        subject.environment, "load_model_strictly", folder=str(contract.code_dir), model_file=str(contract.model_file)
    )
    if answer.get("failed"):
        raise CheckFailed(f"{contract.model_file.name} does not load under the image's packages: {answer['error']}")
    if answer["problems"]:
        versions = ", ".join(f"{name} {version}" for name, version in answer["versions"].items())
        raise CheckFailed(
            f"{contract.model_file.name} was not written with the image's package versions (image: {versions}): "
            + "; ".join(answer["problems"])
        )


def cases(contract):
    return [case(check_pickle_globals_safe), case(check_pickle_globals_resolvable)]


def parity_cases(contract):
    return [case(check_model_file_loads_with_image_versions)]
