"""Pickle audit: every global the model file references must be allowed and resolvable.

Allowed: containers and numpy/scipy/joblib array plumbing (``pickle_audit.ALLOWED_GLOBALS``),
and classes/functions defined in the server folder itself. Resolvable: from the server folder
plus the serving image's package set; the fast layer reads that set from the pins file, the
parity layer (which runs under those pins) imports for real.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

from ..inprocess import folder_module_names, isolated_imports
from ..pickle_audit import audit_joblib, resolve_import
from . import CheckFailed, case


def folder_globals(folder: Path) -> set[tuple[str, str]]:
    """(module, name) of every top-level class and function defined in the folder's modules."""
    found = set()
    for path in folder.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(folder).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        module = ".".join(parts)
        tree = ast.parse(path.read_text(), filename=str(path))
        found |= {(module, node.name) for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    return found


@cache
def pinned_distributions(pins_file: Path) -> frozenset[str]:
    names = set()
    for line in pins_file.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)", line)
        if match and not line.lstrip().startswith("#"):
            names.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    return frozenset(names)


def _distribution_of(top_level: str) -> list[str]:
    from importlib.metadata import packages_distributions

    return [re.sub(r"[-_.]+", "-", name).lower() for name in packages_distributions().get(top_level, [])]


def _audit(subject, resolve):
    contract = subject.contract
    own = folder_globals(contract.code_dir)
    with isolated_imports(contract.code_dir):
        return audit_joblib(contract.model_file, own, resolve)


def check_pickle_globals_allowed(subject) -> None:
    """No global outside the allowlist (os.system, subprocess, eval, a module outside the folder...)."""
    audit = _audit(subject, resolve_import)
    if audit.refused:
        listed = ", ".join(f"{module}.{name}" for module, name in audit.refused)
        raise CheckFailed(f"{subject.contract.model_file.name} references globals that are not allowed: {listed}")
    if not audit.globals:
        raise CheckFailed(f"no global found in {subject.contract.model_file}: not a joblib/pickle file?")
    if audit.error:
        raise CheckFailed(f"{subject.contract.model_file.name} does not load from {subject.contract.code_dir}: {audit.error}")


def check_pickle_globals_resolvable(subject, in_this_environment: bool) -> None:
    """Every global resolves from the server folder plus the serving image's packages."""
    contract = subject.contract
    provided = folder_module_names(contract.code_dir)
    own = folder_globals(contract.code_dir)
    if in_this_environment:
        failures = []

        def resolve(module, name):
            try:
                return resolve_import(module, name)
            except Exception as error:
                failures.append(f"{module}.{name} ({type(error).__name__}: {error})")
                raise

        audit = _audit(subject, resolve)
        if failures or audit.error:
            raise CheckFailed(f"{contract.model_file.name} does not load under this environment: {failures or audit.error}")
        return
    audit = _audit(subject, resolve_import)
    pins = pinned_distributions(subject.pins_file)
    problems = []
    for module, name in audit.globals:
        top = module.split(".")[0]
        if top in provided:
            if (module, name) not in own:
                problems.append(f"{module}.{name}: no such class or function in the server folder {contract.code_dir}")
        elif top in sys.stdlib_module_names:
            continue
        else:
            distributions = _distribution_of(top)
            if not any(dist in pins for dist in distributions):
                where = distributions or ["no installed distribution"]
                problems.append(f"{module}.{name}: module {top!r} ({', '.join(where)}) is neither in the server folder nor in {subject.pins_file.name}")
    if problems:
        raise CheckFailed("unresolvable in the serving container: " + "; ".join(problems))


def cases(contract, resolve_in_this_environment: bool):
    return [
        case(check_pickle_globals_allowed),
        case(check_pickle_globals_resolvable, "serving-environment" if resolve_in_this_environment else "pins-file", in_this_environment=resolve_in_this_environment),
    ]
