"""One road to the container engine, and image facts from the image profile only.

- Every container operation goes through ``dialsgate.container.engine.Engine``: no code or test
  names the engine's client itself (``["docker", ...]``, ``docker ...`` at a shell command's
  place), and the docker SDK is imported only where testcontainers serves the model
  (``container/serve.py``). The deliberate Docker-against-Podman test (``tests/gate/test_podman.py``)
  names both on purpose.
- The stand-in script reads every value it uses from ``profile.toml`` as TOML (through
  ``python -m dialsgate.environment.profiles``), and the report's image facts come from the profile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from dialsgate.container import engine as engine_module
from dialsgate.container.engine import DockerUnavailable, Engine, EngineError
from dialsgate.environment.profiles import PROFILES_DIR, load_profile, script_values
from dialsgate.report.facts import serving_facts

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = REPOSITORY / "dialsgate" / "container" / "build-standin-image.sh"
PROFILE = PROFILES_DIR / "mlserver-1.5.0"

#: Where naming the engine's client is the point: the one class, and the test comparing engines.
ALLOWED = {
    "dialsgate/container/engine.py",
    "tests/gate/test_podman.py",
    "tests/fast/test_one_engine.py",
}
#: A client named in Python: as a command's first word, an element of a command list, or looked up.
PYTHON_INVOCATION = re.compile(r"""\[\s*["'](docker|podman)["']|["'](docker|podman)["']\s*,|which\(\s*["'](docker|podman)["']""")
#: A client at a shell command's place: line start, after $( | ; & then do if !, or after timeout's options.
SHELL_INVOCATION = re.compile(r"(?:^|\$\(|[|;&!]|\bthen\b|\bdo\b|\bif\b|\btimeout\b[^|;&#]*?)\s*(docker|podman)(?=\s|$|\))")
DOCKER_SDK = re.compile(r"^\s*(import docker\b|from docker\b)", re.MULTILINE)


def hard_coded_engine_calls(root: Path = REPOSITORY) -> list[str]:
    """``path:line: text`` of every place outside ``ALLOWED`` that runs the engine's client itself."""
    found = []
    for path in sorted([*root.glob("dialsgate/**/*.py"), *root.glob("dialsgate/**/*.sh"), *root.glob("tests/**/*.py"),
                        *root.glob("tests/**/*.sh")]):  # fmt: skip
        relative = path.relative_to(root).as_posix()
        if relative in ALLOWED or "/corpus/" in relative:
            continue
        shell = path.suffix == ".sh"
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if shell and line.lstrip().startswith("#"):
                continue
            if (SHELL_INVOCATION if shell else PYTHON_INVOCATION).search(line):
                found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_no_code_or_test_runs_the_engines_client_itself():
    found = hard_coded_engine_calls()
    assert not found, "run the engine through dialsgate.container.engine.Engine:\n" + "\n".join(found)


def test_the_engine_patterns_see_what_they_are_for(tmp_path):
    """The scan finds a client named in each way it looks for (so an empty scan means something)."""
    (tmp_path / "dialsgate").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "dialsgate" / "a.py").write_text(
        'subprocess.run(["docker", "ps"])\nrun("podman", "ps")\nshutil.which("docker")\n'
    )
    (tmp_path / "dialsgate" / "b.sh").write_text(
        'docker info\nx="$(podman image inspect x)"\nok || docker rm x\ntimeout 5 docker pull x\n'
        '# docker in a comment\ncommand -v docker\necho "(docker or podman on PATH)"\n"$ENGINE" info\n'
    )
    found = [entry.split(": ", 1)[0] for entry in hard_coded_engine_calls(tmp_path)]
    assert found == ["dialsgate/a.py:1", "dialsgate/a.py:2", "dialsgate/a.py:3"] + [f"dialsgate/b.sh:{n}" for n in (1, 2, 3, 4)]


def test_the_docker_sdk_is_imported_only_where_testcontainers_serves():
    importers = [
        path.relative_to(REPOSITORY).as_posix()
        for path in [*REPOSITORY.glob("dialsgate/**/*.py"), *REPOSITORY.glob("tests/**/*.py")]
        if DOCKER_SDK.search(path.read_text(errors="replace"))
    ]
    assert importers == ["dialsgate/container/serve.py"], importers


# ---------------------------------------------------------------------------- profiles as data


def changed_profile(tmp_path: Path) -> Path:
    """A copy of the profile in a folder named unlike it, with every value the script and the
    report use changed (its files renamed too)."""
    folder = tmp_path / "folder-not-named-as-the-profile"
    shutil.copytree(PROFILE, folder)
    (folder / "core.txt").rename(folder / "other-core.txt")
    (folder / "image-packages.txt").rename(folder / "other-packages.txt")
    core = (folder / "other-core.txt").read_text()
    (folder / "other-core.txt").write_text(re.sub(r"(?m)^mlserver==.*$", "mlserver==9.8.7", core))
    text = (folder / "profile.toml").read_text()
    for old, new in [
        ('name = "mlserver-1.5.0"', 'name = "a-changed-profile"'),
        ('python = "3.10.12"', 'python = "3.97.4"'),
        ('python_origin = "conda"', 'python_origin = "a far place"'),
        ('core = "core.txt"', 'core = "other-core.txt"'),
        ('packages = "image-packages.txt"', 'packages = "other-packages.txt"'),
        ('machine = "x86_64"', 'machine = "riscv64"'),
        ('suite = "bookworm"', 'suite = "forky"'),
        ('system = "Debian 12"', 'system = "Debian 99"'),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    (folder / "profile.toml").write_text(text)
    return folder


def test_the_standin_script_reads_every_value_it_uses_from_the_profile(tmp_path):
    folder = changed_profile(tmp_path)
    run = subprocess.run(
        ["bash", str(SCRIPT), "--profile", str(folder), "--print-profile"],
        env={"PATH": "/usr/bin:/bin", "DIALSGATE_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    values = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert values == {
        "name": "a-changed-profile",
        "python": "3.97",
        "core": str(folder / "other-core.txt"),
        "packages": str(folder / "other-packages.txt"),
        "machine": "riscv64",
        "suite": "forky",
        "image": "dialsgate-standin:a-changed-profile-core",
    }


def test_the_script_takes_exactly_the_values_the_profile_reader_gives():
    offered = set(script_values(load_profile(PROFILE)))
    taken = set(re.findall(r"^\s+([a-z_]+)\) [A-Z_]+=\"\$value\" ;;$", SCRIPT.read_text(), re.MULTILINE))
    assert taken == offered
    assert "sed" not in "".join(line for line in SCRIPT.read_text().splitlines() if "profile.toml" in line)


def test_the_reports_image_facts_come_from_the_profile(tmp_path):
    profile = load_profile(changed_profile(tmp_path))
    contract = SimpleNamespace(image="any/image:1")
    image = {"id": "sha256:1", "tags": [], "created": "", "comment": "", "size": 1, "user": "1000", "labels": {}}
    standin = serving_facts(contract, {**image, "labels": {"org.dialsgate.pins-sha256": "x"}}, profile=profile)
    real = serving_facts(contract, image, profile=profile)
    python = dict(standin.packages)["python"]
    assert "Python 3.97.4 (a far place)" in python and "3.97 copied into Debian 99" in python
    assert dict(standin.packages)["mlserver"] == "9.8.7" and standin.pins_file == str(profile.core_file)
    assert dict(standin.image)["which"] == "the local stand-in (Debian 99, Python 3.97, MLServer 9.8.7)"
    assert dict(real.image)["which"] == "not marked as a stand-in (the real image: Python 3.97.4, MLServer 9.8.7)"


def test_the_report_names_the_templates_image_profile():
    contract = SimpleNamespace(image="registry.cern.ch/docker.io/seldonio/mlserver:1.5.0")
    facts = serving_facts(contract, {"error": "not here"}, profile=None)
    # The real profile's Python (3.10.12, read independently of the loader here) and its core pins.
    python = re.search(r'^python = "([0-9.]+)"', (PROFILE / "profile.toml").read_text(), re.MULTILINE).group(1)
    assert f"Python {python} " in dict(facts.packages)["python"] and "3.11" not in dict(facts.packages)["python"]
    assert facts.pins_file == str(PROFILE / "core.txt")


# ---------------------------------------------------------------------------- the class itself


def fake_client(tmp_path: Path, name: str, script: str) -> Path:
    """An engine client named ``name`` that runs ``script`` (bash; its arguments in "$@")."""
    folder = tmp_path / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    client = folder / name
    client.write_text("#!/bin/bash\n" + script)
    client.chmod(0o755)
    return client


def test_a_failing_command_says_what_the_engine_said_and_a_slow_one_is_stopped(tmp_path):
    engine = Engine(str(fake_client(tmp_path, "docker", 'echo "first line" >&2; echo "Error: the real reason" >&2; exit 3')))
    with pytest.raises(EngineError, match=r"(?s)docker rm --force failed \(exit 3\): .*the real reason"):
        engine.call("rm", "--force", "x")
    slow = Engine(str(fake_client(tmp_path, "podman", "sleep 30")))
    started = time.monotonic()
    with pytest.raises(EngineError, match="did not finish within 0.2 s"):
        slow.call("info", timeout=0.2)
    assert time.monotonic() - started < 10


def test_a_missing_image_is_none_and_an_engine_that_does_not_answer_an_error(tmp_path):
    missing = Engine(str(fake_client(tmp_path, "docker", 'echo "Error: No such image: x" >&2; exit 1')))
    assert missing.image_inspect("x") is None and not missing.image_exists("x")
    podman_missing = Engine(str(fake_client(tmp_path, "podman", 'echo "Error: x: image not known" >&2; exit 125')))
    assert podman_missing.container_inspect("x") is None
    down = Engine(str(fake_client(tmp_path, "docker", 'echo "Cannot connect to the Docker daemon" >&2; exit 1')))
    with pytest.raises(EngineError, match="Cannot connect"):
        down.image_inspect("x")
    assert "Cannot connect" in down.answers(pauses=())


def test_an_engine_that_misses_one_question_still_answers_and_an_absent_one_is_asked_three_times(tmp_path):
    asked = tmp_path / "asked"
    # Busy once (as an engine under load may be), then answering.
    busy_once = fake_client(
        tmp_path / "busy", "docker", f'echo x >> {asked}; [ "$(wc -l < {asked})" -gt 1 ] && echo 28.0 || exit 1'
    )
    assert Engine(str(busy_once)).answers(pauses=(0.01, 0.01)) is None
    assert asked.read_text().count("x") == 2
    asked.unlink()
    absent = fake_client(
        tmp_path / "absent", "docker", f'echo x >> {asked}; echo "Cannot connect to the Docker daemon" >&2; exit 1'
    )
    assert "Cannot connect" in Engine(str(absent)).answers(pauses=(0.01, 0.01))
    assert asked.read_text().count("x") == 3


def test_podman_is_known_by_its_client_or_by_its_version_and_takes_its_own_tmpfs_options(tmp_path):
    docker_on_podman = Engine(str(fake_client(tmp_path, "docker", 'echo "Server: Podman Engine"')))
    plain_docker = Engine(str(fake_client(tmp_path / "other", "docker", 'echo "Server: Docker Engine - Community"')))
    podman = Engine(str(fake_client(tmp_path, "podman", "exit 1")))
    assert docker_on_podman.is_podman and podman.is_podman and not plain_docker.is_podman
    assert plain_docker.tmpfs_owner(1000, 100) == "uid=1000,gid=100"
    assert podman.tmpfs_owner(1000, 100) == docker_on_podman.tmpfs_owner(1000, 100) == "U,notmpcopyup"


def test_events_read_alike_from_either_engine(tmp_path):
    docker = Engine(
        str(
            fake_client(
                tmp_path, "docker", """echo '{"Type":"container","Action":"create","Actor":{"Attributes":{"name":"a"}}}'"""
            )
        )
    )
    podman = Engine(
        str(
            fake_client(
                tmp_path,
                "podman",
                """echo '{"Name":"b","Status":"create","Type":"container","Time":"2020-01-01T00:00:00.5Z"}'
echo '{"Name":"late","Status":"create","Type":"container","Time":"2030-01-01T00:00:00Z"}'""",
            )
        )
    )
    assert docker.events(0, 1, "type=container") == [{"type": "container", "action": "create", "name": "a"}]
    # Podman's events after the window are dropped (it is asked up to now).
    assert podman.events(0, 1577836801) == [{"type": "container", "action": "create", "name": "b"}]


def test_a_watch_reads_the_events_as_they_come_from_its_start_and_ends_with_its_block(tmp_path, monkeypatch):
    # A client that prints what it was asked for as an event, then one more, then streams on.
    monkeypatch.setattr(engine_module, "WATCH_SETTLE", 0.05)  # its events are printed at once
    client = fake_client(
        tmp_path,
        "docker",
        """echo "{\\"Type\\":\\"container\\",\\"Action\\":\\"create\\",\\"Actor\\":{\\"Attributes\\":{\\"name\\":\\"$1 $2\\"}}}"
echo '{"Type":"container","Action":"create","Actor":{"Attributes":{"name":"a"}}}'
echo 'not json'
exec sleep 60""",
    )
    engine = Engine(str(client))
    started = time.monotonic()
    with engine.watching("type=container") as events:
        deadline = time.monotonic() + 10
        while len(events) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [event["name"] for event in events][1:] == ["a"] and events[0]["name"].startswith("events --since")
    assert time.monotonic() - started < 10  # the client was stopped with the block


def test_the_settings_choose_the_client(tmp_path, monkeypatch):
    fake_client(tmp_path, "podman", "exit 0")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("DIALSGATE_ENGINE", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///somewhere.sock")
    chosen = Engine.from_settings()
    assert chosen.name == "podman" and chosen.host == "unix:///somewhere.sock"  # no docker on PATH: podman
    monkeypatch.setenv("DIALSGATE_ENGINE", "docker")
    with pytest.raises(DockerUnavailable, match="docker on PATH"):
        Engine.from_settings()


def test_an_engine_that_lets_the_question_run_out_is_asked_once_and_nothing_more_is_sent_to_it(tmp_path):
    """An engine that accepts the question and never answers (a frozen engine) is asked once,
    not again after the pauses, and every later command fails at once instead of waiting out its
    own timeout (a plain folder's verdict took 7 minutes of such waits)."""
    asked = tmp_path / "asked"
    hung = Engine(str(fake_client(tmp_path, "docker", f"echo x >> {asked}; sleep 30")))
    started = time.monotonic()
    why = hung.answers(timeout=0.1, pauses=(0.01, 0.01))
    assert why and "no container engine answered within 0.1 s" in why
    assert hung.answers(timeout=0.1) == why
    with pytest.raises(EngineError, match="no container engine answered"):
        hung.image_inspect("x")
    assert hung.output_capped(hung.argv("logs", "x"), cap=100, timeout=5) is None
    assert asked.read_text().count("x") == 1 and time.monotonic() - started < 5
