"""The installed tool, once per session: a fresh venv with dialsgate pip-installed from a
read-only copy of this repository, and a scratch folder readable by the containers' user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from installed_tool import REPOSITORY, no_image_python_reachable, run_installed

#: Root writes anywhere: without these capabilities a read-only folder is read-only to it too (util-linux's setpriv).
DROP_WRITE_OVERRIDE = ["--inh-caps=-dac_override", "--bounding-set=-dac_override"]


@pytest.fixture(scope="session")
def scratch():
    folder = Path(tempfile.mkdtemp(prefix="dialsgate-installed-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:  # the read-only source, removable again
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


def _ignored_in_the_copy(folder: str, names: list[str]) -> set[str]:
    """What pip must not see of the checkout: caches, environments, and the gate's own report
    folder at the top (dialsgate/report is a package and must stay)."""
    ignored = set(shutil.ignore_patterns(".git", ".tox", ".tools", ".venv", "__pycache__", "*.egg-info")(folder, names))
    if Path(folder) == REPOSITORY:
        ignored |= {"report", "build"} & set(names)
    return ignored


@pytest.fixture(scope="session")
def venv(scratch):
    """A fresh venv with dialsgate installed from a copy of this repository that the installing
    user cannot write (a checkout in a shared or read-only area): the build writes nothing there."""
    found = no_image_python_reachable()
    assert found is None, f"the image's Python must not be reachable in these tests, but {found} is"
    root = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    source = scratch / "source"
    shutil.copytree(REPOSITORY, source, symlinks=True, ignore=_ignored_in_the_copy)  # the corpus has links to planted files
    for path in [source, *source.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o555)
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root without setpriv: no folder is read-only to this user"
        prefix = [setpriv, *DROP_WRITE_OVERRIDE]
    installed = run_installed([*prefix, str(root / "bin" / "pip"), "install", "--quiet", str(source)], cwd=scratch)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return root
