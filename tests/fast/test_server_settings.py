"""MLServer's parallel_workers as the gate reads it from a folder's settings.json: what
``mlserver start`` would use, or its default where MLServer would refuse the file."""

from __future__ import annotations

import os

import pytest

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
