"""Who model code runs as in an image (``container.sandbox.image_user``): asked of the image once,
then read back from the gate's cache by the image's ID; an answer kept wrong is asked again."""

from __future__ import annotations

import subprocess

import pytest

from dialsgate.container import sandbox
from dialsgate.container.engine import ServingError


class _AskedEngine:
    def __init__(self, answer: bytes):
        self.answer, self.runs = answer, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return subprocess.CompletedProcess(args, 0, stdout=self.answer, stderr=b"")


@pytest.fixture
def engine(monkeypatch, tmp_path):
    monkeypatch.setenv("DIALSGATE_CACHE_DIR", str(tmp_path / "cache"))
    asked = _AskedEngine(b'[1000, 1000, "/home/mlserver"]\n')
    monkeypatch.setattr(sandbox.Engine, "from_settings", classmethod(lambda cls: asked))
    sandbox.image_user.cache_clear()
    yield asked
    sandbox.image_user.cache_clear()


def test_an_image_is_asked_once_then_read_back_by_its_id(engine):
    first = sandbox.image_user("sha256:aaaa", "1000")
    sandbox.image_user.cache_clear()  # another gate run
    again = sandbox.image_user("sha256:aaaa", "1000")
    assert first == again == sandbox.ImageUser(user="1000", uid=1000, gid=1000, home="/home/mlserver")
    assert engine.runs == 1
    sandbox.image_user("sha256:bbbb", "1000")  # another image: asked
    assert engine.runs == 2


def test_an_answer_kept_wrong_is_asked_again(engine):
    kept = sandbox._known_user_file("sha256:aaaa", "1000")
    kept.parent.mkdir(parents=True)
    for wrong in (b"not json", b'[0, "x", 1]', b"[" + b"1, " * 5000 + b"1]"):
        kept.write_bytes(wrong)
        sandbox.image_user.cache_clear()
        assert sandbox.image_user("sha256:aaaa", "1000").uid == 1000
    assert engine.runs == 3


def test_root_is_refused_even_when_kept(engine):
    kept = sandbox._known_user_file("sha256:cccc", "1000")
    kept.parent.mkdir(parents=True)
    kept.write_text('[0, 0, "/root"]')
    with pytest.raises(ServingError, match="uid 0"):
        sandbox.image_user("sha256:cccc", "1000")
    assert engine.runs == 0
