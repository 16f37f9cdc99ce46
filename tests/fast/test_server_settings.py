"""MLServer's parallel_workers as the gate reads it from a folder's settings.json: what
``mlserver start`` would use, or its default where MLServer would refuse the file."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from dialsgate.checks.roundtrip import clean_question
from dialsgate.checks.subject import Subject
from dialsgate.contract.server_settings import DEFAULT_PARALLEL_WORKERS, SETTINGS_CAP, parallel_workers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"parallel_workers": 0}', 0),
        ('{"parallel_workers": 4, "debug": true}', 4),
        # As MLServer 1.5.0's pydantic 1.10 reads them (seen in the image: Settings.parse_obj).
        ('{"parallel_workers": " 0 "}', 0),
        ('{"parallel_workers": "-1"}', -1),
        ('{"parallel_workers": 0.5}', 0),
        ('{"parallel_workers": 1.5}', 1),
        ('{"parallel_workers": false}', 0),
        ('{"parallel_workers": "0.0"}', DEFAULT_PARALLEL_WORKERS),  # refused by MLServer: its start says so
        ('{"parallel_workers": null}', DEFAULT_PARALLEL_WORKERS),
        ('{"parallel_workers": NaN}', DEFAULT_PARALLEL_WORKERS),
        ('{"debug": true}', DEFAULT_PARALLEL_WORKERS),
        ("[0]", DEFAULT_PARALLEL_WORKERS),
        ("not json", DEFAULT_PARALLEL_WORKERS),
        ("[" * 100_000, DEFAULT_PARALLEL_WORKERS),  # nesting deeper than the parser goes
    ],
)
def test_the_value_mlserver_would_use(tmp_path, text, expected):
    (tmp_path / "settings.json").write_text(text)
    assert parallel_workers(tmp_path) == expected


def test_no_settings_file_is_mlservers_default(tmp_path):
    assert parallel_workers(tmp_path) == DEFAULT_PARALLEL_WORKERS == 1


def test_a_link_or_an_oversized_file_is_not_read(tmp_path):
    (tmp_path / "elsewhere.json").write_text('{"parallel_workers": 0}')
    os.symlink(tmp_path / "elsewhere.json", tmp_path / "settings.json")
    assert parallel_workers(tmp_path) == DEFAULT_PARALLEL_WORKERS
    os.unlink(tmp_path / "settings.json")
    (tmp_path / "settings.json").write_text('{"parallel_workers": 0}' + " " * SETTINGS_CAP)
    assert parallel_workers(tmp_path) == DEFAULT_PARALLEL_WORKERS


def test_the_no_container_round_trip_loads_as_the_folder_will_be_served(tmp_path):
    # --no-container: the clean-interpreter round trip is a process of its own; it loads the
    # handler under the start method the folder's settings give, as the handler's worker does.
    code_dir = tmp_path / "mlserver-model"
    code_dir.mkdir()
    (code_dir / "app.py").write_text("")
    (tmp_path / "template.yaml").write_text("")
    contract = SimpleNamespace(handler="app.Model", name="m", template_path=tmp_path / "template.yaml", code_dir=code_dir)

    def subject():  # a new one: what it reads of the folder is read once per subject
        made = Subject(contract, {})
        made.__dict__["pickle_audit"] = None
        made.require_safe_model_file = lambda: None
        made.__dict__["reference_body"] = {"inputs": []}
        return made

    assert clean_question(subject(), str(code_dir), "model.joblib").message["spawn"] is True
    (code_dir / "settings.json").write_text('{"parallel_workers": 0}')
    assert clean_question(subject(), str(code_dir), "model.joblib").message["spawn"] is False
