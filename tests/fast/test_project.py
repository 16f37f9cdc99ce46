"""Project checks of this repository (not part of the generic contract): the server folder is a
synced copy of the model package, and our offline build equals dismcli's own."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from dialsgate import sync
from dialsgate.build import build

REPOSITORY = Path(__file__).resolve().parents[2]


def test_server_package_in_sync_with_model_src():
    found = sync.drift()
    assert not any(found.values()), "mlserver-model/ has drifted from model_src/ (run: python -m dialsgate.sync):\n" + sync.describe(found)


def test_server_folder_holds_only_handler_package_and_model():
    entries = sorted(p.name for p in (REPOSITORY / "mlserver-model").iterdir() if p.name != "__pycache__")
    assert entries == ["app.py", "pixelnmf", "pixelnmf.joblib"], f"unexpected entries in mlserver-model/: {entries}"


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
    assert sorted(ours) == sorted(theirs), f"file lists differ: only ours {sorted(set(ours) - set(theirs))}, only dismcli {sorted(set(theirs) - set(ours))}"
    different = [name for name in ours if not filecmp.cmp(ours[name], theirs[name], shallow=False)]
    assert not different, f"contents differ from dismcli build: {different}"


def test_handler_metadata_advertises_the_template_signature(subject, contract):
    """Our handler fills /v2/models/<name> metadata with exactly the template's signature."""
    model = subject.handler.model
    advertised_inputs = {t.name: (t.datatype, list(t.shape)) for t in model.inputs}
    advertised_outputs = {t.name: (t.datatype, list(t.shape)) for t in model.outputs}
    assert advertised_inputs == {sig.name: (sig.datatype, list(sig.dims)) for sig in contract.inputs}
    assert advertised_outputs == {sig.name: (sig.datatype, list(sig.dims)) for sig in contract.outputs}
