"""The gate's compile cache (numba's NUMBA_CACHE_DIR for the worker): keyed by the server
folder's content and the image, never shared between folders, never in the folder, absent in a
fresh host process."""

from __future__ import annotations

import shutil
from pathlib import Path

from dialsgate.environment.runtime import COMPILE_CACHE_VARIABLE, compile_cache_dir, worker_environment

EXAMPLE_FOLDER = Path(__file__).resolve().parents[2] / "examples" / "nmf1d" / "mlserver-model"
IMAGE = "sha256:aaaa"


def test_same_content_anywhere_shares_its_cache(tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(EXAMPLE_FOLDER, copy)
    assert compile_cache_dir(copy, IMAGE) == compile_cache_dir(EXAMPLE_FOLDER, IMAGE)


def test_other_content_or_environment_gets_another_cache_outside_the_folder(tmp_path):
    copy = tmp_path / "changed"
    shutil.copytree(EXAMPLE_FOLDER, copy)
    (copy / "app.py").write_text((copy / "app.py").read_text() + "\n# changed\n")
    original = compile_cache_dir(EXAMPLE_FOLDER, IMAGE)
    assert compile_cache_dir(copy, IMAGE) != original
    assert compile_cache_dir(EXAMPLE_FOLDER, "sha256:bbbb") != original
    assert EXAMPLE_FOLDER not in original.parents and copy not in compile_cache_dir(copy, IMAGE).parents


def test_a_worker_without_a_cache_gets_none_even_if_the_caller_has_one(monkeypatch, tmp_path):
    monkeypatch.setenv(COMPILE_CACHE_VARIABLE, "/somewhere/else")
    assert COMPILE_CACHE_VARIABLE not in worker_environment()
    assert worker_environment(tmp_path)[COMPILE_CACHE_VARIABLE] == str(tmp_path)
