"""pytest --dials-template starts the folder's work when collection ends (the plugin): the files
that need neither the folder nor monkeypatch run beside it, then the folder's own tests, and a
test that patches comes last and waits for that work to end."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from dialsgate.checks.subject import Question, Subject
from dialsgate.pytest_plugin import plugin
from tests.fast.test_early_questions import LoggingRuntime


def _item(path: str, *fixtures: str):
    return SimpleNamespace(path=Path(path), fixturenames=["request", *fixtures], name=f"{path}:{len(fixtures)}")


def test_files_needing_neither_run_first_then_the_folders_then_those_that_patch_each_file_whole():
    items = [
        _item("tests/a.py"),
        _item("tests/a.py", "monkeypatch"),  # so the whole of a.py waits with the patching files
        _item("tests/b.py", "subject"),
        _item("tests/b.py"),
        _item("tests/c.py", "tmp_path"),
        _item("layers/test_fast.py", "subject", "contract"),
        _item("tests/d.py"),
        _item("tests/e.py", "monkeypatch", "tmp_path"),
    ]
    ordered = list(items)
    plugin._early_work_first(ordered)
    assert [item.name for item in ordered] == [
        items[4].name, items[6].name,  # neither: in collection order
        items[2].name, items[3].name, items[5].name,  # the folder's
        items[0].name, items[1].name, items[7].name,  # monkeypatch: when the folder's work has ended
    ]  # fmt: skip


class _Recording:
    def __init__(self):
        self.waited = 0

    def wait_early(self):
        self.waited += 1


@pytest.mark.parametrize(("fixtures", "waits"), [(("monkeypatch",), 1), (("tmp_path", "capsys"), 0)])
def test_a_test_that_patches_waits_for_the_folders_early_work(fixtures, waits):
    recording = _Recording()
    config = SimpleNamespace(stash={plugin.EARLY_SUBJECT: recording})
    plugin.pytest_runtest_setup(SimpleNamespace(config=config, fixturenames=["request", *fixtures]))
    assert recording.waited == waits


def test_nothing_waits_when_no_early_work_started():
    item = SimpleNamespace(config=SimpleNamespace(stash={}), fixturenames=["monkeypatch"])
    plugin.pytest_runtest_setup(item)  # no subject: returns at once


def test_waiting_for_the_early_work_waits_for_every_thread_it_started(tmp_path):
    made = Subject(SimpleNamespace(), {})
    made._runtime = LoggingRuntime(tmp_path / "starts.log")
    plain = Question({"op": "installed"}, "installed")
    clean = Question({"folder": "/x"}, "the clean-interpreter round trip", ("--clean",))  # a thread of its own
    made.ask_early(lambda _: [plain, clean], load_handler=False)
    made.wait_early()
    assert len(made._asking) == 2 and not any(thread.is_alive() for thread in made._asking)
    assert all(made._early[question.key()].done() for question in (plain, clean))
    made.close()
