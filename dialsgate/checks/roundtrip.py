"""Clean-interpreter round trip: the server folder alone, plus site-packages, must be enough.

The seed deployment's joblib loaded only where the author's repository was importable; in the
serving container only the CodeUri folder exists. So the folder is copied alone (to a place of
its own under the gate's cache, which depends only on its content, so that a model compiling
its code at load finds its compile cache again) and loaded in a new ``python -I`` of the serving
environment (the image's Python and packages) whose import path is that folder plus
site-packages, with the repository's own packages proven unimportable.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from dialsgate.checks.base import CheckFailed, case, check
from dialsgate.checks.signature import _same_outputs
from dialsgate.checks.subject import explain_load_error
from dialsgate.environment.serving import folder_module_names, locked
from dialsgate.transports.worker import WORKER_SCRIPT, compile_cache_dir, worker_environment


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


@check(kind="failure", concern="packaging")
def check_clean_interpreter_round_trip(subject) -> None:
    """The server folder, copied alone, loads and answers in a clean ``python -I`` of the image's packages."""
    contract = subject.contract
    subject.require_safe_model_file()
    expected = subject.reference_outcome  # the handler loaded in the worker first (else: not run, see check_handler_loads)
    python = subject.environment.python
    work = subject.temp_folder("dialsgate-clean-")
    # The copy's place depends only on the folder's content, so a model that compiles its code
    # when it loads finds its compile cache again (endpoint.compile_cache_dir; one run at a time).
    compile_cache = compile_cache_dir(contract.code_dir, subject.environment)
    with locked(compile_cache.with_name(compile_cache.name + ".clean.lock")):
        folder = compile_cache.with_name(compile_cache.name + ".clean") / "model"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(contract.code_dir, folder, ignore=shutil.ignore_patterns("__pycache__"))
        folder.chmod(0o755)
        model_file = folder / contract.model_file.name
        if not model_file.exists():
            shutil.copy2(contract.model_file, model_file)
        provided = folder_module_names(folder)
        repository = repository_root(contract.template_path.parent)
        spec = {
            "folder": str(folder),
            "repository": str(repository),
            "model_file": str(model_file),
            "handler": contract.handler,
            "name": contract.name,
            "request": str(work / "request.json"),
            "result": str(work / "result.json"),
            "forbidden": repository_module_names(sorted({repository, contract.template_path.parent}), provided),
            "provided": sorted(provided),
            # A pickle is loaded strictly first (version warnings as errors); another format only by the handler.
            "load_as_pickle": subject.pickle_audit is not None,
        }
        (work / "request.json").write_text(json.dumps(subject.reference_body))
        (work / "spec.json").write_text(json.dumps(spec))
        run = subprocess.run(
            [str(python), "-I", "-B", str(WORKER_SCRIPT), "--clean", str(work / "spec.json")],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
            env=worker_environment(compile_cache),  # a fresh process; only its compile cache is kept
        )
        shutil.rmtree(folder, ignore_errors=True)
    if run.returncode != 0 or not (work / "result.json").exists():
        raise CheckFailed(f"clean interpreter crashed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    result = json.loads((work / "result.json").read_text())
    if result.get("importable_forbidden"):
        raise CheckFailed(f"repository modules importable in the clean interpreter: {result['importable_forbidden']}")
    outside = {name: origin for name, origin in result.get("origins", {}).items() if not str(origin).startswith(str(folder))}
    if outside:
        raise CheckFailed(f"modules of the server folder were imported from elsewhere: {outside}")
    if "error" in result:
        raise CheckFailed(
            f"server folder alone (copied to {folder}) failed: {explain_load_error(result['error'])}\n"
            f"{result.get('traceback', '')[-2500:]}"
        )
    if expected.status != 200:
        raise CheckFailed(f"in-process handler failed on the reference batch: {expected.error}")
    _same_outputs(expected.response, result["response"], "clean interpreter vs in-process")


def cases(contract):
    return [case(check_clean_interpreter_round_trip)]
