"""dialsgate.plainfiles: a folder's paths stay inside their root through no link, its files are
read only when plain, and every read and walk has a cap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dialsgate.plainfiles import NotPlain, inside, open_plain, read_plain, walk_plain


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text("x = 1\n")
    (tmp_path / "secret").write_text("probe\n")
    return tmp_path


def test_inside_accepts_a_plain_relative_path(folder):
    assert inside(folder, "code/app.py") == folder / "code" / "app.py"
    assert inside(folder, "./code/") == folder / "code"


@pytest.mark.parametrize("relative", ["/etc/passwd", "../secret", "code/../../secret"])
def test_inside_refuses_paths_leaving_the_root(folder, relative):
    with pytest.raises(NotPlain):
        inside(folder / "code", relative)


def test_inside_refuses_a_link_on_the_way(folder):
    os.symlink(folder / "code", folder / "linked")
    with pytest.raises(NotPlain, match="symbolic link"):
        inside(folder, "linked/app.py")


def test_open_plain_refuses_a_link_a_fifo_and_a_device(folder):
    os.symlink(folder / "secret", folder / "code" / "link.txt")
    os.mkfifo(folder / "code" / "pipe")
    for path, what in [
        (folder / "code" / "link.txt", "symbolic link"),
        (folder / "code" / "pipe", "FIFO"),
        ("/dev/zero", "device"),
    ]:
        with pytest.raises(NotPlain, match=what):
            open_plain(path)
    with open_plain(folder / "code" / "app.py") as stream:
        assert stream.read() == b"x = 1\n"


def test_read_plain_refuses_more_than_its_cap(folder):
    assert read_plain(folder / "secret", cap=6) == b"probe\n"
    with pytest.raises(NotPlain, match="more than 5 bytes"):
        read_plain(folder / "secret", cap=5)


def test_walk_plain_reports_what_is_not_plain_and_follows_nothing(folder):
    os.symlink(folder / "secret", folder / "code" / "README")
    os.symlink("/etc", folder / "code" / "etc")
    os.mkfifo(folder / "code" / "pipe")
    tree = walk_plain(folder / "code")
    assert tree.files == [folder / "code" / "app.py"]
    assert sorted(tree.problems()) == ["README is a symbolic link", "etc is a symbolic link", "pipe is a FIFO (named pipe)"]


def test_walk_plain_has_a_cap(folder):
    for index in range(5):
        (folder / "code" / f"f{index}").write_text("")
    assert "more than 3 entries" in walk_plain(folder / "code", max_entries=3).problems()[0]


def test_a_read_sets_aside_the_files_size_not_the_cap(tmp_path):
    """read(cap + 1) asked for the cap's 2 GiB first: every read of a small file failed with
    MemoryError under an address-space limit (ulimit -v, strict overcommit)."""
    import subprocess
    import sys

    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    limited = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
        "from pathlib import Path; from dialsgate.plainfiles import read_plain; "
        "sys.stdout.write(read_plain(Path(sys.argv[1])).decode())"
    )
    repository = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", limited, str(tmp_path / "template.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=repository,
    )
    assert (done.returncode, done.stdout) == (0, "Resources: {}\n"), done.stderr[-500:]


def test_a_file_holding_more_than_its_size_says_is_read_on_to_the_cap():
    """A regular file whose fstat size is 0 (procfs) is read in pieces, and still capped."""
    assert read_plain(Path("/proc/self/status"), cap=1 << 20).startswith(b"Name:")
    with pytest.raises(NotPlain, match="more than 10 bytes"):
        read_plain(Path("/proc/self/status"), cap=10)
