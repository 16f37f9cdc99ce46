"""Pickle audit: a static walk that passes only what it knows to be safe; fails closed.

``modelfile.pickle_audit`` reads the model file's opcodes without building anything (joblib's
array data and compressed streams followed statically) and judges every global by its full name
and how the pickle uses it (called, instantiated, BUILD-set, passed along) against
``pickle-allowlist.toml``; the server folder's own classes are shown by the folder's source (AST),
never imported. Anything else, or anything the walk cannot model, fails and the file is loaded
nowhere. Resolution then asks the worker container of the serving image only about the image
packages' globals. A model file positively recognised as another format (ONNX, XGBoost, LightGBM,
numeric arrays) has nothing to audit, unless it is also a pickle (a polyglot: it fails).
"""

from __future__ import annotations

from dialsgate.checks.base import CheckFailed, CheckNotApplicable, case, check
from dialsgate.checks.subject import Question, main_module_remedy
from dialsgate.modelfile.pickle_audit import audit_any, folder_pickles


def _not_a_pickle(subject) -> None:
    if subject.model_format is not None:  # a polyglot has no model_format: it is audited as a pickle
        found = subject.model_format
        raise CheckNotApplicable(f"{subject.contract.model_file.name} is a {found.name} file ({found.detail}), not a pickle")
    if subject.pickle_audit is None:
        raise CheckNotApplicable(f"there is no model file {subject.contract.model_file} (see check_model_file_exists)")


def _audit_failure(audit) -> str | None:
    if audit.polyglot:
        return f"{audit.refusal()}. It was not loaded by any check."
    if audit.refused:
        return (
            f"{audit.refusal()}. It was not loaded by any check. A global passes only when it is a class of the "
            f"server folder (shown by its source) or listed, for the way the pickle uses it, in "
            f"dialsgate/modelfile/pickle-allowlist.toml"
        )
    if audit.error:
        return (
            f"{audit.path.name} could not be fully audited: {audit.error}. What follows that point was never seen, "
            f"so the file is loaded nowhere. A model file joblib or pickle writes from plain estimators and arrays "
            f"walks to its end; if this is an ONNX, XGBoost or LightGBM file, it did not parse as one."
        )
    return None


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_pickle_globals_safe(subject) -> None:
    """Every global of the model file is known to be safe for the way the pickle uses it (a class of
    the server folder, or on the allowlist), the whole file was walked (what the walk cannot model
    fails closed), and a file recognised as another format is not also a pickle (a polyglot)."""
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
    failures = [failure for path in found if (failure := _audit_failure(audit_any(path, contract.code_dir)))]
    if failures:
        raise CheckFailed(" | ".join(failures))


@check(kind="failure", concern="packaging", runs_model_code=True)
def check_pickle_globals_resolvable(subject) -> None:
    """Every global resolves: the server folder's classes by the folder's source (AST, never imported),
    the image packages' globals in the serving image, at the image's versions."""
    contract = subject.contract
    _not_a_pickle(subject)
    audit = subject.pickle_audit
    if audit.unresolvable and not (audit.refused or audit.error or audit.polyglot):
        raise CheckFailed(f"{contract.model_file.name} {audit.resolves_nowhere()}. It was not loaded by any check")
    subject.require_safe_model_file()
    wanted = audit.to_resolve()
    from_main = sorted(name for module, name in wanted if module == "__main__")
    if from_main:
        raise CheckFailed("; ".join(main_module_remedy(name) for name in from_main))
    question = resolve_question(subject)
    if question is None:
        return  # only classes of the server folder, each shown by its source
    answer = subject.ask_fresh(question)
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
    answer = subject.ask_fresh(strict_load_question(subject))
    if answer.get("failed"):
        raise CheckFailed(f"{contract.model_file.name} does not load under the image's packages: {answer['error']}")
    if answer["problems"]:
        versions = ", ".join(f"{name} {version}" for name, version in answer["versions"].items())
        raise CheckFailed(
            f"{contract.model_file.name} was not written with the image's package versions (image: {versions}): "
            + "; ".join(answer["problems"])
        )


def resolve_question(subject) -> Question | None:
    """What check_pickle_globals_resolvable asks the serving image: the globals that are no class of
    the server folder (None: nothing to ask). Only of a fully audited, safe pickle."""
    _not_a_pickle(subject)
    subject.require_safe_model_file()
    wanted = subject.pickle_audit.to_resolve()
    if not wanted or any(module == "__main__" for module, _ in wanted):
        return None
    return Question({"op": "resolve", "folder": subject.runtime.folder, "globals": wanted}, "resolve")


def strict_load_question(subject) -> Question:
    """What check_model_file_loads_with_image_versions asks: load the model file, warnings recorded."""
    _not_a_pickle(subject)
    subject.require_safe_model_file()
    subject.require_no_class_from_main()
    runtime = subject.runtime
    message = {"op": "load_model_strictly", "folder": runtime.folder, "model_file": runtime.model_file}
    return Question(message, "load_model_strictly")


def cases(contract):
    return [case(check_pickle_globals_safe), case(check_folder_pickles_safe), case(check_pickle_globals_resolvable)]


def parity_cases(contract):
    return [case(check_model_file_loads_with_image_versions)]
