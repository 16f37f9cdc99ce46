"""explain_load_error names the cause of a handler that did not load: a class pickled from
__main__, the model file opened by its bare name, top-level code that fails when the module is
reloaded, a write into its read-only folder, a write elsewhere on the sandbox's read-only root."""

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


def test_the_model_file_opened_by_its_bare_name_points_to_get_model_uri():
    text = "FileNotFoundError: [Errno 2] No such file or directory: 'nmf.joblib'"
    explained = explain_load_error(text, FOLDER_INSIDE, Path("/work/repo/mlserver-model"), "nmf.joblib")
    assert "parameters.uri is the model file's name" in explained and "get_model_uri(self.settings)" in explained
    # Another missing file, or the model file named with its folder, is not this cause.
    other = "FileNotFoundError: [Errno 2] No such file or directory: 'labels.json'"
    assert explain_load_error(other, FOLDER_INSIDE, None, "nmf.joblib") == other
    full = "FileNotFoundError: [Errno 2] No such file or directory: '/data/nmf.joblib'"
    assert explain_load_error(full, FOLDER_INSIDE, None, "nmf.joblib") == full


def test_top_level_code_failing_in_the_reload_says_mlserver_runs_it_twice():
    text = (
        "ValueError: Duplicated timeseries in CollectorRegistry: {'loss'}\nTraceback (most recent call last):\n"
        '  File "/opt/python/lib/python3.10/importlib/__init__.py", line 169, in reload\n'
        "    _bootstrap._exec(spec, module)\n"
        '  File "/mnt/my-model/app.py", line 19, in <module>\n'
    )
    explained = explain_load_error(text, FOLDER_INSIDE)
    assert explained.startswith("MLServer imports the handler's module and then reloads it") and explained.endswith(text)
    first_import = text.replace("in reload", "in import_module")
    assert explain_load_error(first_import, FOLDER_INSIDE) == first_import


def test_any_other_error_is_left_as_it_is():
    assert explain_load_error("ValueError: bad", FOLDER_INSIDE) == "ValueError: bad"
