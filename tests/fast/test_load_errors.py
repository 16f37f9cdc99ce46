"""explain_load_error names the cause of a handler that did not load: a class pickled from
__main__, a write into its read-only folder, a write elsewhere on the sandbox's read-only root."""

from __future__ import annotations

from pathlib import Path

from dialsgate.checks.subject import explain_load_error

FOLDER_INSIDE = "/mnt/my-model"


def test_a_write_into_the_folder_is_named_as_it_lies_in_the_folder():
    text = "OSError: [Errno 30] Read-only file system: '/mnt/my-model/cache/basis.npy'"
    explained = explain_load_error(text, FOLDER_INSIDE, Path("/work/repo/mlserver-model"))
    assert "mlserver-model/cache/basis.npy inside its server folder" in explained
    assert "read-only in DIALS" in explained


def test_a_write_on_the_read_only_root_names_the_path_and_where_writing_works():
    text = "OSError: [Errno 30] Read-only file system: '/opt/mlserver/predictions.log'"
    explained = explain_load_error(text, FOLDER_INSIDE, Path("/work/repo/mlserver-model"))
    assert "/opt/mlserver/predictions.log" in explained and "tempfile.gettempdir()" in explained
    assert "inside its server folder" not in explained


def test_a_class_from_main_is_named_with_its_remedy():
    text = "AttributeError: Can't get attribute 'OccupancyScorer' on <module '__main__' from '/x.py'>"
    assert "Move class OccupancyScorer into a module of the server folder" in explain_load_error(text)


def test_any_other_error_is_left_as_it_is():
    assert explain_load_error("ValueError: bad", FOLDER_INSIDE) == "ValueError: bad"
