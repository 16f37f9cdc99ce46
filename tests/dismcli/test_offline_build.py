"""Our offline build (dialsgate.contract.build) writes exactly what dismcli build writes.

dismcli (cmsdism) pins urllib3 < 2 through its DIALS client while MLServer >= 1.6 needs
tritonclient with urllib3 >= 2, so this runs in its own environment: `tox -e dismcli`.
"""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import pytest

from dialsgate.contract.build import build

REPOSITORY = Path(__file__).resolve().parents[2]


#: Each deployment's template and the one model file its package must hold (both share mlserver-model/).
DEPLOYMENTS = {"template.yaml": "pixelnmf.joblib", "template-2025f.yaml": "pixelnmf-2025f.joblib"}


def _copy_project(destination: Path, template: str = "template.yaml") -> Path:
    shutil.copy2(REPOSITORY / template, destination / "template.yaml")
    shutil.copytree(REPOSITORY / "mlserver-model", destination / "mlserver-model", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPOSITORY / "models", destination / "models")
    return destination / "template.yaml"


def _dismcli_build(project: Path, monkeypatch) -> None:
    """dismcli 0.6.1's own ApplicationBuilder, its DIALS look-up (a CERN login) stubbed."""
    from dismcli.lib.builder import builder as builder_module

    class OfflineInputValidator:
        def __init__(self, resource, creds):
            pass

        def validate(self):
            pass

    monkeypatch.chdir(project)
    monkeypatch.setattr(builder_module, "InputSignatureValidator", OfflineInputValidator)
    builder_module.ApplicationBuilder("template.yaml", dials_creds=None)()


def _tree(root: Path) -> dict[str, Path]:
    return {path.relative_to(root).as_posix(): path for path in root.rglob("*") if path.is_file()}


@pytest.mark.parametrize("template", sorted(DEPLOYMENTS))
def test_offline_build_equals_dismcli_build(tmp_path, monkeypatch, template):
    """Same files, same bytes as dismcli 0.6.1's ApplicationBuilder (its DIALS look-up stubbed)."""
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    ours_dir.mkdir()
    theirs_dir.mkdir()
    build(_copy_project(ours_dir, template))
    _copy_project(theirs_dir, template)
    _dismcli_build(theirs_dir, monkeypatch)

    ours, theirs = _tree(ours_dir / ".dism-artifacts"), _tree(theirs_dir / ".dism-artifacts")
    assert sorted(ours) == sorted(theirs), (
        f"file lists differ: only ours {sorted(set(ours) - set(theirs))}, only dismcli {sorted(set(theirs) - set(ours))}"
    )
    different = [name for name in ours if not filecmp.cmp(ours[name], theirs[name], shallow=False)]
    assert not different, f"contents differ from dismcli build: {different}"


@pytest.mark.parametrize("template", sorted(DEPLOYMENTS))
def test_each_package_holds_the_model_code_and_only_its_own_model_file(tmp_path, monkeypatch, template):
    """What dismcli package zips (every file under .dism-artifacts/build/<Key>/): the handler, the
    one model package, model-settings.json naming this deployment's model file, and that file only."""
    project = tmp_path / "project"
    project.mkdir()
    _copy_project(project, template)
    _dismcli_build(project, monkeypatch)
    (package,) = [p for p in (project / ".dism-artifacts" / "build").iterdir() if p.is_dir()]
    files = sorted(_tree(package))
    code = sorted(p.relative_to(REPOSITORY / "mlserver-model").as_posix() for p in (REPOSITORY / "mlserver-model").rglob("*.py"))
    assert files == sorted([*code, "model-settings.json", DEPLOYMENTS[template]]), files
    assert json.loads((package / "model-settings.json").read_text())["parameters"]["uri"] == DEPLOYMENTS[template]
    assert filecmp.cmp(package / DEPLOYMENTS[template], REPOSITORY / "models" / DEPLOYMENTS[template], shallow=False)
