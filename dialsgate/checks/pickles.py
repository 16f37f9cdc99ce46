"""Pickle audit: judged by danger and by resolution, not by a fixed allowlist; fails closed.

A global of the model file passes when it resolves from the server folder or from a package of
the image (scikit-learn estimators are normal). It fails, named, when it is a code-execution or
I/O primitive (``pickle-danger.toml``), or when it resolves nowhere. The walk that lists the
globals never calls any of them (``pickle_audit``); a walk that could not read the whole file
fails the audit, since what it did not reach was not seen. Resolution imports modules and looks
names up in the worker container of the serving image, without unpickling. A model file positively recognised as
another format (``model_formats``: ONNX, XGBoost, LightGBM, numeric arrays) has nothing to audit.
"""

from __future__ import annotations

from dialsgate.checks.base import CheckFailed, CheckNotApplicable, case, check
from dialsgate.checks.subject import main_module_remedy
from dialsgate.modelfile.pickle_audit import audit_any, folder_pickles
from dialsgate.transports.worker import run_once


def _not_a_pickle(subject) -> None:
    if subject.model_format is not None:
        found = subject.model_format
        raise CheckNotApplicable(f"{subject.contract.model_file.name} is a {found.name} file ({found.detail}), not a pickle")
    if subject.pickle_audit is None:
        raise CheckNotApplicable(f"there is no model file {subject.contract.model_file} (see check_model_file_exists)")


def _audit_failure(audit) -> str | None:
    dangerous = audit.dangerous()
    if dangerous:
        listed = "; ".join(f"{module}.{name} ({danger.why})" for module, name, danger in dangerous)
        return f"{audit.path.name} references dangerous globals: {listed}. It was not loaded by any check."
    if audit.error:
        return (
            f"{audit.path.name} could not be fully audited: {audit.error}. What follows that point was never seen, "
            f"so the file is loaded nowhere. A model file joblib or pickle writes from plain estimators and arrays "
            f"walks to its end; if this is an ONNX, XGBoost or LightGBM file, it did not parse as one."
        )
    return None


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_pickle_globals_safe(subject) -> None:
    """No code-execution or I/O primitive (os.system, subprocess, eval, open...) in the model file,
    and the whole file was walked (an audit that stopped early fails closed)."""
    _not_a_pickle(subject)
    failure = _audit_failure(subject.pickle_audit)
    if failure:
        raise CheckFailed(failure)


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_folder_pickles_safe(subject) -> None:
    """Other pickles in the server folder (a scaler.pkl the handler loads, an object .npy) pass the same audit."""
    contract = subject.contract
    found = folder_pickles(contract.code_dir, contract.model_file)
    if not found:
        raise CheckNotApplicable(f"no pickle in {contract.code_dir.name}/ besides the model file")
    failures = [failure for path in found if (failure := _audit_failure(audit_any(path)))]
    if failures:
        raise CheckFailed(" | ".join(failures))


@check(kind="failure", concern="packaging", runs_model_code=True)
def check_pickle_globals_resolvable(subject) -> None:
    """Every global resolves from the server folder plus the image's packages, at the image's versions."""
    contract = subject.contract
    _not_a_pickle(subject)
    subject.require_safe_model_file()
    wanted = subject.pickle_audit.to_resolve()
    from_main = sorted(name for module, name in wanted if module == "__main__")
    if from_main:
        raise CheckFailed("; ".join(main_module_remedy(name) for name in from_main))
    runtime = subject.runtime
    answer = run_once(runtime, "resolve", folder=runtime.folder, globals=wanted)
    if answer.get("failed"):
        raise CheckFailed(f"resolving the globals of {contract.model_file.name} failed: {answer['error']}")
    if answer["unresolved"]:
        listed = "; ".join(f"{name}: {reason}" for name, reason in answer["unresolved"].items())
        raise CheckFailed(
            f"{contract.model_file.name} references globals that resolve neither from the server folder {contract.code_dir} "
            f"nor from the image's packages ({subject.profile.name}): {listed}"
        )


@check(kind="failure", concern="versions", runs_model_code=True)
def check_model_file_loads_with_image_versions(subject) -> None:
    """The model file was written with the image's versions: it loads without version warnings.

    A joblib written under numpy 2 references ``numpy._core``; one written under another
    scikit-learn raises InconsistentVersionWarning naming both versions. Either may load today
    and misbehave in DIALS.
    """
    contract = subject.contract
    _not_a_pickle(subject)
    subject.require_safe_model_file()
    subject.require_no_class_from_main()
    runtime = subject.runtime
    answer = run_once(runtime, "load_model_strictly", folder=runtime.folder, model_file=runtime.model_file)
    if answer.get("failed"):
        raise CheckFailed(f"{contract.model_file.name} does not load under the image's packages: {answer['error']}")
    if answer["problems"]:
        versions = ", ".join(f"{name} {version}" for name, version in answer["versions"].items())
        raise CheckFailed(
            f"{contract.model_file.name} was not written with the image's package versions (image: {versions}): "
            + "; ".join(answer["problems"])
        )


def cases(contract):
    return [case(check_pickle_globals_safe), case(check_folder_pickles_safe), case(check_pickle_globals_resolvable)]


def parity_cases(contract):
    return [case(check_model_file_loads_with_image_versions)]
