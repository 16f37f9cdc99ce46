"""The gate's compile cache (numba's NUMBA_CACHE_DIR for the worker): keyed by everything model
code sees (the server folder's content, the model file, where they are mounted, which carries the
resource's Name, the image, the gate), never shared otherwise, never in the folder, absent in a
fresh host process; only numba's own regular files go in and come back."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from dialsgate.container import worker as worker_module
from dialsgate.container.engine import Engine
from dialsgate.container.sandbox import ImageUser
from dialsgate.container.worker import WorkerContainer, compile_cache_archive, compile_cache_members
from dialsgate.contract.template import load_contract
from dialsgate.environment.runtime import COMPILE_CACHE_VARIABLE, compile_cache_dir, worker_environment
from dialsgate.environment.serving import CACHE_ENV

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nmf1d"
EXAMPLE_FOLDER = EXAMPLE / "mlserver-model"
MODEL = EXAMPLE_FOLDER / "nmf1d.joblib"
SEEN_AT = "/mnt/pixel-charge-nmf1d\0/mnt/model/nmf1d.joblib"
IMAGE = "sha256:aaaa"


def _other_model(tmp_path: Path) -> Path:
    """A model file of the same name, another content (as another folder's author would ship)."""
    other = tmp_path / "other-model" / MODEL.name
    other.parent.mkdir()
    other.write_bytes(MODEL.read_bytes() + b"\0")
    return other


def test_same_content_anywhere_shares_its_cache(tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(EXAMPLE_FOLDER, copy)
    assert compile_cache_dir(copy, copy / MODEL.name, SEEN_AT, IMAGE) == compile_cache_dir(EXAMPLE_FOLDER, MODEL, SEEN_AT, IMAGE)


def test_any_difference_in_what_model_code_sees_gets_another_cache_outside_the_folder(tmp_path):
    copy = tmp_path / "changed"
    shutil.copytree(EXAMPLE_FOLDER, copy)
    (copy / "app.py").write_text((copy / "app.py").read_text() + "\n# changed\n")
    renamed = tmp_path / "renamed" / "model.joblib"
    renamed.parent.mkdir()
    shutil.copy2(MODEL, renamed)
    original = compile_cache_dir(EXAMPLE_FOLDER, MODEL, SEEN_AT, IMAGE)
    others = [
        compile_cache_dir(copy, MODEL, SEEN_AT, IMAGE),  # another folder content
        compile_cache_dir(EXAMPLE_FOLDER, _other_model(tmp_path), SEEN_AT, IMAGE),  # another model file
        compile_cache_dir(EXAMPLE_FOLDER, renamed, SEEN_AT, IMAGE),  # the same bytes under another name
        compile_cache_dir(EXAMPLE_FOLDER, MODEL, SEEN_AT.replace("pixel-charge-nmf1d", "other-name"), IMAGE),  # another Name
        compile_cache_dir(EXAMPLE_FOLDER, MODEL, SEEN_AT, "sha256:bbbb"),  # another image
    ]
    assert len({original, *others}) == 6
    assert all(EXAMPLE_FOLDER not in path.parents and copy not in path.parents for path in [original, *others])


def test_a_worker_without_a_cache_gets_none_even_if_the_caller_has_one(monkeypatch, tmp_path):
    monkeypatch.setenv(COMPILE_CACHE_VARIABLE, "/somewhere/else")
    assert COMPILE_CACHE_VARIABLE not in worker_environment()
    assert worker_environment(tmp_path)[COMPILE_CACHE_VARIABLE] == str(tmp_path)


def test_only_numba_regular_files_go_into_a_container(tmp_path):
    cache = tmp_path / "cache"
    (cache / "sub").mkdir(parents=True)
    (cache / "f.nbi").write_bytes(b"index")
    (cache / "sub" / "f.nbc").write_bytes(b"data")
    (cache / "sitecustomize.py").write_text("print('not numba')")
    outside = tmp_path / "outside.nbi"
    outside.write_bytes(b"a file of this machine")
    (cache / "link.nbi").symlink_to(outside)
    with tarfile.open(fileobj=io.BytesIO(compile_cache_archive(cache))) as archive:
        assert sorted(member.name for member in archive.getmembers()) == ["f.nbi", "sub/f.nbc"]
    assert compile_cache_archive(tmp_path / "absent") is None


def test_only_numba_regular_files_within_the_bound_come_back(monkeypatch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("f.nbi", b"i" * 10), ("run.py", b"code"), ("f.nbc", b"c" * 10)):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
        link = tarfile.TarInfo("g.nbi")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as archive:
        assert [member.name for member in compile_cache_members(archive)] == ["f.nbi", "f.nbc"]
    monkeypatch.setattr(worker_module, "COMPILE_CACHE_MAX_BYTES", 15)
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as archive:
        assert compile_cache_members(archive) is None


def test_a_file_another_run_removes_meanwhile_is_left_out_of_what_goes_in(tmp_path, monkeypatch):
    """Two runs of the same folder and model share its cache (two tox environments at once): one
    may replace it while the other reads it. What is gone is left out; the worker still starts
    (numba compiles what it does not find)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "f.nbi").write_bytes(b"index")
    (cache / "f.nbc").write_bytes(b"data")
    walk = os.walk
    monkeypatch.setattr(
        worker_module.os, "walk", lambda top: ((folder, dirs, [*names, "gone.nbc"]) for folder, dirs, names in walk(top))
    )
    with tarfile.open(fileobj=io.BytesIO(compile_cache_archive(cache))) as archive:
        assert sorted(member.name for member in archive.getmembers()) == ["f.nbc", "f.nbi"]


def test_a_saved_cache_takes_the_place_of_the_old_one_and_yields_to_one_saved_meanwhile(tmp_path, monkeypatch):
    cache = tmp_path / "compile" / "key"
    cache.mkdir(parents=True)
    (cache / "old.nbi").write_bytes(b"old")
    staging = tmp_path / "compile" / ".staging-1"
    staging.mkdir()
    (staging / "new.nbi").write_bytes(b"new")
    worker_module.put_in_place(staging, cache)
    assert os.listdir(cache) == ["new.nbi"] and not staging.exists()
    # Another run's cache arrives between this one's removal and its rename: it stays, whole.
    other = tmp_path / "compile" / ".staging-2"
    other.mkdir()
    (other / "mine.nbi").write_bytes(b"mine")
    remove = shutil.rmtree
    monkeypatch.setattr(worker_module.shutil, "rmtree", lambda path, ignore_errors=False: remove(path) if path == other else None)
    worker_module.put_in_place(other, cache)
    assert os.listdir(cache) == ["new.nbi"] and not other.exists()  # nothing nested inside it either


@pytest.fixture
def workers(monkeypatch, tmp_path):
    """WorkerContainer with the engine replaced: the restore path as it runs, what it sends in recorded."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "gate-cache"))
    images = {"stand-in": "sha256:aaaa", "another": "sha256:bbbb"}
    engine = Engine("docker")
    engine.is_podman = False  # (never asked of an engine here)
    monkeypatch.setattr(Engine, "from_settings", classmethod(lambda cls: engine))
    monkeypatch.setattr(worker_module, "image_facts", lambda image, engine=None: (images[image], "1000", True))
    monkeypatch.setattr(worker_module, "image_user", lambda identity, user: ImageUser(user, 1000, 1000, "/home/mlserver"))
    monkeypatch.setattr(WorkerContainer, "_start", lambda self: None)
    restored: list[bytes] = []
    monkeypatch.setattr(WorkerContainer, "exec", lambda self, command, stdin=b"", timeout=120: restored.append(stdin))
    contract = load_contract(EXAMPLE / "template.yaml")

    def start(image="stand-in", name=None, model_file=MODEL):
        made = WorkerContainer(dataclasses.replace(contract, name=name or contract.name), image, model_file=model_file)
        made.close()  # (nothing started: only the copies go)
        return made

    return start, restored


def test_a_cache_written_for_one_folder_and_model_is_restored_for_those_only(workers, tmp_path):
    start, restored = workers
    first = start()
    assert restored == []  # nothing cached yet
    # What a save would have kept of the first run: numba's files.
    first.compile_cache.mkdir(parents=True)
    (first.compile_cache / "app.f-1.py310.nbi").write_bytes(b"index written by the folder's code")
    start()
    assert len(restored) == 1 and b"index written by the folder's code" in restored[0]
    restored.clear()
    start(model_file=_other_model(tmp_path))  # the same folder with another model file
    start(name="another-resource")  # the same folder and model under another Name
    start(image="another")  # in another image
    assert restored == []
    assert os.listdir(first.compile_cache) == ["app.f-1.py310.nbi"]  # nothing else was written there


def test_the_copies_model_code_sees_keep_the_times_a_cache_is_checked_against(workers, monkeypatch):
    """numba's cache index holds its source's modification time and size: a copy stamped with the
    time of each run made every run compile again (3 s of the pixel model's load, twice a gate)."""
    start, _ = workers
    seen = {}

    def record(container):
        for path in (container._copies / "folder").rglob("*"):
            seen[path.relative_to(container._copies / "folder")] = path.stat().st_mtime_ns
        seen["model"] = (container._copies / "model" / MODEL.name).stat().st_mtime_ns

    monkeypatch.setattr(WorkerContainer, "_start", record)
    start()
    originals = {
        path.relative_to(EXAMPLE_FOLDER): path.stat().st_mtime_ns for path in EXAMPLE_FOLDER.rglob("*") if path.is_file()
    }
    assert {path: seen[path] for path in originals} == originals
    assert seen["model"] == MODEL.stat().st_mtime_ns
