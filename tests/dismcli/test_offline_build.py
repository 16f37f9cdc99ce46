"""Our offline build (dialsgate.build) writes exactly what dismcli build writes.

dismcli (cmsdism) pins urllib3 < 2 through its DIALS client while MLServer >= 1.6 needs
tritonclient with urllib3 >= 2, so this runs in its own environment: `tox -e dismcli`.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from dialsgate.build import build

REPOSITORY = Path(__file__).resolve().parents[2]


def _copy_project(destination: Path) -> Path:
    shutil.copy2(REPOSITORY / "template.yaml", destination / "template.yaml")
    shutil.copytree(REPOSITORY / "mlserver-model", destination / "mlserver-model", ignore=shutil.ignore_patterns("__pycache__"))
    return destination / "template.yaml"


def _tree(root: Path) -> dict[str, Path]:
    return {path.relative_to(root).as_posix(): path for path in root.rglob("*") if path.is_file()}


def test_offline_build_equals_dismcli_build(tmp_path, monkeypatch):
    """Same files, same bytes as dismcli 0.6.1's ApplicationBuilder (its DIALS look-up stubbed)."""
    from dismcli.lib.builder import builder as builder_module

    class OfflineInputValidator:
        def __init__(self, resource, creds):
            pass

        def validate(self):
            pass

    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    ours_dir.mkdir()
    theirs_dir.mkdir()
    build(_copy_project(ours_dir))
    _copy_project(theirs_dir)
    monkeypatch.chdir(theirs_dir)
    monkeypatch.setattr(builder_module, "InputSignatureValidator", OfflineInputValidator)
    builder_module.ApplicationBuilder("template.yaml", dials_creds=None)()

    ours, theirs = _tree(ours_dir / ".dism-artifacts"), _tree(theirs_dir / ".dism-artifacts")
    assert sorted(ours) == sorted(theirs), (
        f"file lists differ: only ours {sorted(set(ours) - set(theirs))}, only dismcli {sorted(set(theirs) - set(ours))}"
    )
    different = [name for name in ours if not filecmp.cmp(ours[name], theirs[name], shallow=False)]
    assert not different, f"contents differ from dismcli build: {different}"
