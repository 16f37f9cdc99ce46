"""Our offline package (dialsgate.contract.build.package) writes what dismcli package writes, and
``dialsgate check --package`` admits dismcli's own output (``tox -e dismcli``: dismcli's own
ApplicationPackager, its DIALS calls and upload stubbed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from test_offline_build import DEPLOYMENTS, _copy_project

from dialsgate.contract.build import build, package
from dialsgate.contract.packaged import unpack_package
from dialsgate.contract.template import load_contract

BUCKET = "dials-ml"


def _dismcli_package(project: Path, monkeypatch) -> Path:
    """dismcli 0.6.1's ApplicationPackager on project/.dism-artifacts/build: the presigned URL a
    stand-in (s3 path <bucket>/<workspace>/<zip name>), no upload, no model of that name in DIALS."""
    from dismcli.lib.package import packager as packager_module

    class OfflineMinio:
        def __init__(self, *args, **kwargs):
            pass

        def presigned_put_object(self, workspace, object_name):
            return f"https://s3.example.cern.ch/{BUCKET}/{workspace}/{object_name}?X-Amz-Signature=ab%3D"

    class OfflineDials:
        def __init__(self, *args, **kwargs):
            self.ml_models_index = self

        def list_all(self, filters):
            return type("Page", (), {"results": []})()

    class Uploaded:
        def raise_for_status(self):
            pass

    class Credentials:
        client = type("Client", (), {"base_url": "https://offline.invalid/"})

    monkeypatch.chdir(project)
    monkeypatch.setattr(packager_module, "DialsMinioClient", OfflineMinio)
    monkeypatch.setattr(packager_module, "Dials", OfflineDials)
    monkeypatch.setattr(packager_module.requests, "put", lambda *args, **kwargs: Uploaded())
    packager_module.ApplicationPackager(Credentials())()
    return project / ".dism-artifacts" / "package"


def _members(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


@pytest.mark.parametrize("template", sorted(DEPLOYMENTS))
def test_offline_package_equals_dismcli_package(tmp_path, monkeypatch, template):
    """Same members and bytes in the zip; the same template but for the zip's name (a uuid4)."""
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    ours_dir.mkdir()
    theirs_dir.mkdir()
    for folder in (ours_dir, theirs_dir):
        build(_copy_project(folder, template))
    (ours_zip,) = package(ours_dir / ".dism-artifacts" / "build", ours_dir / ".dism-artifacts" / "package", BUCKET).values()
    theirs = _dismcli_package(theirs_dir, monkeypatch)
    (theirs_zip,) = theirs.glob("*.zip")
    assert _members(ours_zip) == _members(theirs_zip)
    ours_text = (ours_zip.parent / "template.yaml").read_text().replace(ours_zip.name, "<zip>")
    assert ours_text == (theirs / "template.yaml").read_text().replace(theirs_zip.name, "<zip>")


@pytest.mark.parametrize("template", sorted(DEPLOYMENTS))
def test_dismcli_package_is_admitted(tmp_path, monkeypatch, template):
    """dismcli's own packaged template and zip unpack into the build folder's files, and the
    author form reads as the same contract as the build folder."""
    project = tmp_path / "project"
    project.mkdir()
    build(_copy_project(project, template))
    theirs = _dismcli_package(project, monkeypatch)
    (zip_path,) = theirs.glob("*.zip")
    admitted = unpack_package(theirs / "template.yaml", zip_path, tmp_path / "admitted")
    built = project / ".dism-artifacts" / "build" / admitted.resource_key
    assert sorted(member.name for member in admitted.members) == sorted(
        path.relative_to(built).as_posix() for path in built.rglob("*") if path.is_file()
    )
    for member in admitted.members:
        assert (admitted.folder / member.name).read_bytes() == (built / member.name).read_bytes()
    judged = load_contract(admitted.template, build_dir=admitted.folder)
    original = load_contract(project / "template.yaml", build_dir=built)
    for field in ("inputs", "outputs", "metadata_inputs", "name", "handler"):
        assert getattr(judged, field) == getattr(original, field), field
    assert judged.model_file.name == original.model_file.name
