"""Package audit: what ``dismcli package`` would zip, i.e. every file under the build folder.

dismcli zips the folder recursively, so interpreter caches, notebooks, editor droppings, tests
and data files go to DIALS too unless they are kept out of CodeUri.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
from pathlib import Path

from dialsgate.checks.base import CheckFailed, case, check
from dialsgate.contract.template import MODEL_SETTINGS
from dialsgate.limits import limit
from dialsgate.plainfiles import NotPlain, plain_kind, read_plain, walk_plain
from dialsgate.pysource import parse

#: model-settings.json holds a name, a handler and a file name.
MAX_SETTINGS_JSON_BYTES = 2**20

#: Patterns (of any path component) that must never reach DIALS.
STRAY_PATTERNS = (
    "__pycache__", "*.pyc", "*.pyo", ".ipynb_checkpoints", "*.ipynb", ".DS_Store", "Thumbs.db",
    ".git", ".gitignore", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache", ".tox", ".venv",
    "tests", "test_*.py", "*_test.py", "conftest.py", ".dism-artifacts",
    "*.npz", "*.npy", "*.csv", "*.parquet", "*.h5", "*.hdf5", "*.root", "*.zip", "*.tar*", "*~", "*.swp",
)  # fmt: skip
#: Upper bound on the zipped folder's size (bytes, uncompressed): the model file plus code.
MAX_PACKAGE_BYTES = 50 * 1024 * 1024


def package_files(folder: Path) -> list[Path]:
    """Every plain file dismcli package would put in the zip (relative paths; no link followed)."""
    return [path.relative_to(folder) for path in walk_plain(Path(folder)).files]


def names_in_code(folder: Path) -> set[str]:
    """File names the folder's code mentions in string literals (data files it loads on purpose)."""

    found = set()
    for path in walk_plain(Path(folder)).files:
        if path.suffix != ".py" or "__pycache__" in path.parts:
            continue
        try:
            tree = parse(read_plain(path, int(limit("source_file_bytes"))))
        except (SyntaxError, ValueError, NotPlain):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 300:
                found.add(Path(node.value).name)
    return found


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_package_has_no_stray_files(subject) -> None:
    """Nothing in the zip that the model does not use: caches, notebooks, tests, stray data.

    A data file that the folder's code names (e.g. ``np.load(HERE / "reference.npy")``) is used
    on purpose and stays.
    """
    subject.require_plain_folder()
    folder = subject.package_folder
    wanted = {subject.contract.model_file.name} | names_in_code(folder)
    stray = [
        str(path)
        for path in package_files(folder)
        if path.name not in wanted and any(fnmatch.fnmatch(part, pattern) for part in path.parts for pattern in STRAY_PATTERNS)
    ]
    if stray:
        raise CheckFailed(f"dismcli package would ship these from {folder}: {stray[:20]} (remove them from CodeUri)")


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_package_size(subject) -> None:
    subject.require_plain_folder()
    folder = subject.package_folder
    total = sum(os.lstat(folder / path).st_size for path in package_files(folder))
    if total > MAX_PACKAGE_BYTES:
        raise CheckFailed(f"{folder} holds {total / 1e6:.1f} MB, above the {MAX_PACKAGE_BYTES / 1e6:.0f} MB limit")


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_model_settings_agree(subject) -> None:
    """model-settings.json (written by dismcli build) names the template's model, handler and file."""
    subject.require_plain_folder()
    path = subject.package_folder / MODEL_SETTINGS
    if plain_kind(path) is not None:
        raise CheckFailed(f"{path} is missing: the folder was not built by dismcli build")

    settings = json.loads(read_plain(path, MAX_SETTINGS_JSON_BYTES))
    expected = subject.contract.model_settings()
    received = {
        "name": settings.get("name"),
        "implementation": settings.get("implementation"),
        "uri": (settings.get("parameters") or {}).get("uri"),
    }
    wanted = {"name": expected["name"], "implementation": expected["implementation"], "uri": expected["parameters"]["uri"]}
    wrong = {key: (received[key], wanted[key]) for key in wanted if received[key] != wanted[key]}
    if wrong:
        raise CheckFailed(
            f"{path} disagrees with the template: " + ", ".join(f"{k} is {r!r}, expected {w!r}" for k, (r, w) in wrong.items())
        )
    if plain_kind(subject.package_folder / wanted["uri"]) is not None:
        raise CheckFailed(f"{path} points at {wanted['uri']!r}, which is not in {subject.package_folder}")


def cases(contract):
    return [case(check_package_has_no_stray_files), case(check_package_size), case(check_model_settings_agree)]
