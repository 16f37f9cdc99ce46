"""Project checks of this repository (not part of the generic contract): one server folder for
both deployments, each template pointing at its own model file outside it, and the handler
advertises the template's signature."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
TEMPLATES = ("template.yaml", "template-2025f.yaml")


def _properties(template: str) -> dict:
    resources = yaml.safe_load((REPOSITORY / template).read_text())["Resources"]
    return next(iter(resources.values()))["Properties"]


def test_server_folder_holds_only_handler_and_package():
    entries = sorted(p.name for p in (REPOSITORY / "mlserver-model").iterdir() if p.name != "__pycache__")
    assert entries == ["app.py", "pixelnmf"], f"unexpected entries in mlserver-model/: {entries}"


def test_the_tests_leave_no_bytecode_in_the_server_folder():
    # The tests import the model from mlserver-model/; bytecode written beside it would be zipped
    # by dismcli package, and the fast layer's check_package_has_no_stray_files fails the next run.
    server_folder = REPOSITORY / "mlserver-model"
    inside = [
        cached
        for source in sorted(server_folder.rglob("*.py"))
        if server_folder in Path(cached := importlib.util.cache_from_source(source)).parents
    ]
    assert not inside, f"this process writes bytecode into the server folder: {inside[:3]}"


def test_both_deployments_share_the_server_folder_each_with_its_own_model_file():
    code = {_properties(t)["CodeUri"].rstrip("/") for t in TEMPLATES}
    models = [_properties(t)["ModelUri"] for t in TEMPLATES]
    assert code == {"mlserver-model"}
    assert len(set(models)) == len(models) and all(m.startswith("models/") for m in models), models


def test_the_model_package_exists_once_in_git():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPOSITORY, capture_output=True, text=True, check=True).stdout.split()
    copies = [path for path in tracked if path.endswith("pixelnmf/model.py")]
    assert copies == ["mlserver-model/pixelnmf/model.py"], copies


def test_handler_metadata_advertises_the_template_signature(subject, contract):
    """Our handler fills /v2/models/<name> metadata with exactly the template's signature."""
    metadata = subject.handler.metadata()
    advertised_inputs = {t["name"]: (t["datatype"], list(t["shape"])) for t in metadata["inputs"]}
    advertised_outputs = {t["name"]: (t["datatype"], list(t["shape"])) for t in metadata["outputs"]}
    # The declared OMS metadata inputs are required too, so they are advertised with the maps.
    assert advertised_inputs == {sig.name: (sig.datatype, list(sig.dims)) for sig in contract.inputs + contract.metadata_inputs}
    assert advertised_outputs == {sig.name: (sig.datatype, list(sig.dims)) for sig in contract.outputs}


def test_dialsgate_names_no_model_and_no_repository():
    """dialsgate is every DIALS author's tool: what this repository adds to its own gate (tests,
    report pictures, settings) comes through the plugin, entry points or dialsgate.toml."""
    pattern = re.compile(r"pixelnmf|bpix|model_src", re.IGNORECASE)
    found = []
    for path in sorted((REPOSITORY / "dialsgate").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}")
    assert not found, "dialsgate names this repository's model:\n" + "\n".join(found)


def test_test_modules_have_names_of_their_own():
    """pytest imports each test file by its name (no ``__init__.py`` here): two of one name in
    different folders stop ``pytest -k fast``, which collects them all, at collection; tox's
    environments collect one folder each and would not show it."""
    by_name: dict[str, list[str]] = {}
    for path in sorted([*(REPOSITORY / "tests").rglob("test_*.py"), *(REPOSITORY / "dialsgate").rglob("test_*.py")]):
        if "corpus" not in path.relative_to(REPOSITORY).parts:
            by_name.setdefault(path.name, []).append(str(path.relative_to(REPOSITORY)))
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}
