"""Clean-interpreter round trip: the server folder alone, plus site-packages, must be enough.

The seed deployment's joblib loaded only where the author's repository was importable; in the
serving container only the CodeUri folder exists. So the folder is loaded alone (in the worker
container it is the only folder of the host there is; on the host it is copied away first) in a
new ``python -I`` of the image's Python and packages, whose import path is that folder plus
site-packages, with the repository's own packages proven unimportable.
"""

from __future__ import annotations

from pathlib import Path

from dialsgate.checks.base import CheckFailed, case, check
from dialsgate.checks.signature import _same_outputs
from dialsgate.checks.subject import Question, explain_load_error
from dialsgate.environment.serving import folder_module_names
from dialsgate.transports.worker import WorkerFailed


def repository_root(template_folder: Path) -> Path:
    """The checkout around the template: the nearest folder with .git or pyproject.toml."""
    for folder in [template_folder, *template_folder.parents]:
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return folder
    return template_folder


def repository_module_names(folders: list[Path], provided: set[str]) -> list[str]:
    """Modules of the given folders and of their subfolders (e.g. src/*)."""
    names = set()
    for top in folders:
        for folder in [top, *(p for p in top.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))]:
            names |= folder_module_names(folder)
            if folder != top and not (folder / "__init__.py").exists():
                names.add(folder.name)  # a plain folder is importable as a namespace package
    return sorted(name for name in names - provided if name.isidentifier() and not name.startswith("__"))


@check(kind="failure", concern="packaging", runs_model_code=True)
def check_clean_interpreter_round_trip(subject) -> None:
    """The server folder, copied alone, loads and answers in a clean ``python -I`` of the image's packages."""
    contract = subject.contract
    subject.require_safe_model_file()
    expected = subject.reference_outcome  # the handler loaded in the worker first (else: not run, see check_handler_loads)
    with subject.runtime.alone() as (folder, model_file):
        try:
            result = subject.ask_fresh(clean_question(subject, folder, model_file))
        except WorkerFailed as error:
            raise CheckFailed(f"clean interpreter crashed: {error}") from None
    if result.get("importable_forbidden"):
        raise CheckFailed(f"repository modules importable in the clean interpreter: {result['importable_forbidden']}")
    outside = {name: origin for name, origin in result.get("origins", {}).items() if not str(origin).startswith(str(folder))}
    if outside:
        raise CheckFailed(f"modules of the server folder were imported from elsewhere: {outside}")
    if "error" in result:
        raise CheckFailed(
            f"server folder alone ({folder}) failed: {explain_load_error(result['error'], folder, contract.code_dir, contract.model_file.name)}\n"
            f"{result.get('traceback', '')[-2500:]}"
        )
    if expected.status != 200:
        raise CheckFailed(f"in-process handler failed on the reference batch: {expected.error}")
    _same_outputs(expected.response, result["response"], "clean interpreter vs in-process")


def clean_question(subject, folder: str, model_file: str) -> Question:
    """The clean-interpreter round trip's spec, for the server folder alone at ``folder``."""
    contract = subject.contract
    subject.require_safe_model_file()
    provided = folder_module_names(contract.code_dir)
    repository = repository_root(contract.template_path.parent)
    spec = {
        "folder": folder,
        "repository": str(repository),
        "model_file": model_file,
        "handler": contract.handler,
        "name": contract.name,
        "request": subject.reference_body,
        "forbidden": repository_module_names(sorted({repository, contract.template_path.parent}), provided),
        "provided": sorted(provided),
        # A pickle is loaded strictly first (version warnings as errors); another format only by the handler.
        "load_as_pickle": subject.pickle_audit is not None,
    }
    # A fresh process: nothing imported before it.
    return Question(spec, "the clean-interpreter round trip", ("--clean",))


def early_clean_question(subject) -> Question | None:
    """The same, asked before its check: only where the folder is alone without a copy (the
    worker container; on the host the copy lives only during the check)."""
    subject.require_importable_folder()  # else its check is not run (behind check_handler_loads' causes)
    subject.require_no_class_from_main()
    runtime = subject.runtime
    return clean_question(subject, runtime.folder, runtime.model_file) if runtime.kind == "container" else None


def cases(contract):
    return [case(check_clean_interpreter_round_trip)]
