"""Plain files under the template's folder: check_folder_plain_files names every link, FIFO,
device and path leaving the folder; nothing behind one is walked, copied, hashed or built; and a
folder that is not plain gets no runtime (every model-code row is not run behind the check)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dialsgate.checks import CheckFailed, CheckNotRun, fast_checks
from dialsgate.checks.folder import check_folder_plain_files, folder_problems
from dialsgate.checks.static import python_files
from dialsgate.checks.subject import Subject
from dialsgate.contract.build import build
from dialsgate.contract.template import load_contract
from dialsgate.environment.serving import folder_imports, folder_module_names
from dialsgate.fingerprint import tree_sha256
from dialsgate.plainfiles import NotPlain, copy_plain
from dialsgate.settings import reference_batch_beside, settings

PLAIN = Path(__file__).resolve().parents[2] / "tests" / "gate" / "corpus" / "sklearn_nmf_plain"
SECRET = "dialsgate-test-secret-behind-a-link"


@pytest.fixture
def folder(tmp_path):
    """A copy of the plain NMF corpus folder, and a secret outside it."""
    copy = tmp_path / "model"
    shutil.copytree(PLAIN, copy)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text(SECRET)
    (tmp_path / "outside" / "evil.py").write_text("import uproot\n")
    return copy


def problems_of(folder: Path, **kwargs) -> list[str]:
    return folder_problems(load_contract(folder / "template.yaml"), **kwargs)


def test_a_plain_folder_has_no_problem(folder):
    assert problems_of(folder) == []
    check_folder_plain_files(Subject(load_contract(folder / "template.yaml"), {}))


def test_links_fifos_and_devices_in_codeuri_are_named(folder):
    code = folder / "mlserver-model"
    os.symlink(folder.parent / "outside" / "secret.txt", code / "README.md")
    os.symlink(folder.parent / "outside", code / "data")
    os.symlink("/dev/zero", code / "README")
    os.mkfifo(code / "pipe")
    assert sorted(problems_of(folder)) == [
        "mlserver-model/README is a symbolic link",
        "mlserver-model/README.md is a symbolic link",
        "mlserver-model/data is a symbolic link",
        "mlserver-model/pipe is a FIFO (named pipe)",
    ]
    with pytest.raises(CheckFailed, match=r"4 path\(s\) .*README.md is a symbolic link"):
        check_folder_plain_files(Subject(load_contract(folder / "template.yaml"), {}))


def test_codeuri_and_modeluri_outside_the_folder_give_a_contract_and_a_failing_row(folder):
    text = (folder / "template.yaml").read_text()
    text = text.replace("CodeUri: mlserver-model/", f"CodeUri: {folder.parent / 'outside'}/")
    text = text.replace("ModelUri: mlserver-model/nmf_bpix1.joblib", "ModelUri: ../outside/secret.txt")
    (folder / "template.yaml").write_text(text)
    contract = load_contract(folder / "template.yaml")  # no exception: the verdict names the paths
    assert not contract.code_dir.exists() and not contract.model_file.exists()
    assert contract.code_dir.parent == contract.model_file.parent == folder
    problems = folder_problems(contract)
    assert len(problems) == 2
    assert problems[0].startswith("CodeUri: ") and "absolute path" in problems[0]
    assert problems[1].startswith("ModelUri: ") and "'..'" in problems[1]
    # Nothing of the outside folder reaches the checks that read the folder.
    assert python_files(contract.code_dir) == [] and folder_imports(contract.code_dir) == []


def test_a_link_on_the_way_to_codeuri_is_refused(folder):
    os.rename(folder / "mlserver-model", folder.parent / "outside" / "mlserver-model")
    os.symlink(folder.parent / "outside", folder / "linked")
    text = (folder / "template.yaml").read_text().replace("mlserver-model/", "linked/mlserver-model/")
    (folder / "template.yaml").write_text(text)
    problems = problems_of(folder)
    assert any(problem.startswith("CodeUri: linked is a symbolic link") for problem in problems), problems


def test_a_modeluri_link_is_refused_even_to_a_file_of_the_folder(folder):
    code = folder / "mlserver-model"
    os.rename(code / "nmf_bpix1.joblib", folder / "trained.joblib")
    os.symlink("../trained.joblib", code / "nmf_bpix1.joblib")
    assert any(problem.startswith("ModelUri: ") for problem in problems_of(folder))


def test_the_reference_batch_and_settings_paths_obey_the_same_rule(folder):
    os.unlink(folder / "reference_batch.npz")
    os.mkfifo(folder / "reference_batch.npz")
    contract = load_contract(folder / "template.yaml")
    assert reference_batch_beside(contract) is None  # sample data are sent instead
    assert problems_of(folder) == ["reference batch reference_batch.npz is a FIFO (named pipe), not a plain file: it is not read"]

    (folder / "dialsgate.toml").write_text('reference_batch = "../outside/secret.txt"\nreport_pictures = ["/etc/hooks.py:f"]\n')
    problems = problems_of(folder)
    assert any("reference_batch of dialsgate.toml" in problem and "'..'" in problem for problem in problems), problems
    assert any("report_pictures of dialsgate.toml" in problem and "absolute" in problem for problem in problems), problems

    os.unlink(folder / "dialsgate.toml")
    os.symlink(folder.parent / "outside" / "secret.txt", folder / "dialsgate.toml")
    assert settings(contract) == {}
    assert any(problem.startswith("dialsgate.toml: ") for problem in problems_of(folder))


def test_a_reference_batch_given_on_the_command_line_must_be_a_plain_file(folder, tmp_path):
    os.mkfifo(tmp_path / "batch.npz")
    problems = problems_of(folder, reference_batch=tmp_path / "batch.npz")
    assert problems == ["--reference-batch batch.npz is a FIFO (named pipe), not a plain file: it is not read"]
    assert problems_of(folder, reference_batch=PLAIN / "reference_batch.npz") == []


def test_a_folder_that_is_not_plain_gets_no_runtime(folder):
    os.symlink(folder.parent / "outside" / "secret.txt", folder / "mlserver-model" / "README.md")
    subject = Subject(load_contract(folder / "template.yaml"), {}, no_container=False)
    with pytest.raises(CheckNotRun, match=r"README.md is a symbolic link.*\(see check_folder_plain_files\)"):
        subject.runtime  # noqa: B018  (refused before any engine or image is asked)
    assert "check_folder_plain_files" in [case.id for case in fast_checks(subject.contract)]


def test_walks_hashes_copies_and_builds_never_follow_a_link(folder, tmp_path):
    code = folder / "mlserver-model"
    before = tree_sha256(code)
    os.symlink(folder.parent / "outside" / "secret.txt", code / "README.md")
    os.symlink(folder.parent / "outside", code / "data")
    linked_hash = tree_sha256(code)
    (folder.parent / "outside" / "secret.txt").write_text("another secret")
    assert tree_sha256(code) == linked_hash != before  # the link counts by its name, never its target
    assert [path.name for path in python_files(code)] == ["app.py"]
    assert "evil" not in folder_module_names(code) and "data" not in folder_module_names(code)
    assert all(site.module != "uproot" for site in folder_imports(code))

    copied = tmp_path / "copy"
    tree = copy_plain(code, copied)
    assert sorted(path.name for path in copied.iterdir()) == ["app.py", "nmf_bpix1.joblib"]
    assert [what for _, what in tree.refused] == ["a symbolic link", "a symbolic link"]

    root = build(folder / "template.yaml", tmp_path / "build")
    built = root / "NMFPlain"
    names = sorted(path.name for path in built.rglob("*"))
    assert names == ["app.py", "model-settings.json", "nmf_bpix1.joblib"]
    assert not any(SECRET in path.read_text(errors="replace") for path in built.rglob("*") if path.is_file())


def test_the_offline_build_refuses_a_codeuri_outside_the_folder(folder, tmp_path):
    text = (folder / "template.yaml").read_text().replace("CodeUri: mlserver-model/", "CodeUri: ../outside/")
    (folder / "template.yaml").write_text(text)
    with pytest.raises(NotPlain, match="leaves the template's folder"):
        build(folder / "template.yaml", tmp_path / "build")


#: The build of a folder, for a user without the right to write read-only files (root with
#: CAP_DAC_OVERRIDE dropped, util-linux's setpriv); prints the build's error, if any.
BUILD_AS_A_USER = """
import sys
from dialsgate.contract.build import build
try:
    build(sys.argv[1], sys.argv[2])
except Exception as error:
    print(type(error).__name__, error)
"""


@pytest.mark.parametrize("read_only", ["app.py", "nmf_bpix1.joblib"])
def test_a_read_only_model_file_inside_code_uri_is_refused_saying_why_and_other_read_only_files_are_built(
    folder, tmp_path, read_only
):
    """dismcli build copies ModelUri, then every file of CodeUri, each keeping its mode: a model
    file inside CodeUri is copied twice, and a read-only one refuses the second copy."""
    (folder / "mlserver-model" / read_only).chmod(0o444)
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: every file is writable to this user")
        prefix = [setpriv, "--inh-caps=-dac_override", "--bounding-set=-dac_override"]
    said = subprocess.run(
        [*prefix, sys.executable, "-c", BUILD_AS_A_USER, str(folder / "template.yaml"), str(tmp_path / "build")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert said.returncode == 0, said.stderr
    if read_only == "app.py":
        assert said.stdout == "" and (tmp_path / "build" / "NMFPlain" / "app.py").is_file()
    else:
        assert said.stdout.startswith("PermissionError mlserver-model/nmf_bpix1.joblib is read-only and inside CodeUri"), (
            said.stdout
        )
        assert said.stdout.rstrip().endswith("(chmod u+w mlserver-model/nmf_bpix1.joblib)"), said.stdout
