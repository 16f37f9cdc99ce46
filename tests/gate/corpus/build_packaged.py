"""Write the corpus's packaged folders: ``dismcli package``'s template and zip of the plain NMF.

``sklearn_nmf_plain`` built and packaged offline as dismcli 0.6.1 does
(``dialsgate.contract.build.build`` and ``package``, tested equal to dismcli's own in
tests/dismcli), its Name changed so that each folder's containers carry their own, the zip given
a fixed uuid4-like name, the files' times fixed (two runs give the same zip bytes on one file
system). Needs dism-core (requirements/common.txt)::

    python tests/gate/corpus/build_packaged.py

* ``packaged_template_zip``: the package as dismcli writes it (expected: pass).
* ``packaged_zip_symlink_member``: the same zip with one more member, ``README.md``, a symbolic
  link (mode 0o120777) to ``/etc/passwd``, as ``zip --symlinks`` stores one (expected: refused).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from dialsgate.contract.build import build, package  # noqa: E402

PLAIN = HERE / "sklearn_nmf_plain"
#: Fixed zip names, as dismcli's uuid4().hex + ".zip".
FOLDERS = {
    "packaged_template_zip": ("corpus-packaged-zip", "5d1a1c0e6f2b4a7e9c3d8b1f0a2e4c6d.zip"),
    "packaged_zip_symlink_member": ("corpus-packaged-symlink", "9b3e7f1a2c4d4e6f8a0b1c2d3e4f5a6b.zip"),
}
FIXED_TIME = 1_767_225_600  # 2026-01-01 00:00 UTC


def write_folder(name: str, model_name: str, zip_name: str) -> Path:
    target = HERE / name
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch)
        text = (PLAIN / "template.yaml").read_text().replace("Name: corpus-nmf-plain", f"Name: {model_name}")
        (project / "template.yaml").write_text(text)
        shutil.copytree(PLAIN / "mlserver-model", project / "mlserver-model", ignore=shutil.ignore_patterns("__pycache__"))
        root = build(project / "template.yaml")
        for path in root.rglob("*"):
            os.utime(path, (FIXED_TIME, FIXED_TIME))
        (zip_path,) = package(root, project / "package", bucket="dials-ml").values()
        template = (zip_path.parent / "template.yaml").read_text().replace(zip_path.name, zip_name)
        target.mkdir(exist_ok=True)
        for old in target.glob("*.zip"):
            old.unlink()
        (target / "template.yaml").write_text(template)
        shutil.copy(zip_path, target / zip_name)
        shutil.copy(PLAIN / "reference_batch.npz", target / "reference_batch.npz")
    return target / zip_name


def add_symlink_member(zip_path: Path) -> None:
    link = zipfile.ZipInfo("README.md", date_time=(2026, 1, 1, 0, 0, 0))
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(zip_path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(link, "/etc/passwd")


def main() -> int:
    for name, (model_name, zip_name) in FOLDERS.items():
        zip_path = write_folder(name, model_name, zip_name)
        if name == "packaged_zip_symlink_member":
            add_symlink_member(zip_path)
        print(f"wrote {zip_path.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
