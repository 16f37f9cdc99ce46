"""A warm gate run prepares the serving image without the stand-in script: the labels of the
stand-in core say it is the one the script would build today (``container.image.standin_is_current``),
and the script agrees on which labels those are. A stale core, or none, still goes to the script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dialsgate.container import image as image_module
from dialsgate.container.engine import Engine
from dialsgate.environment.profiles import PROFILES_DIR, load_profile

PROFILE = load_profile(PROFILES_DIR / "mlserver-1.5.0")
TEMPLATE_IMAGE = "registry.cern.ch/docker.io/seldonio/mlserver:1.5.0"
CORE = f"dialsgate-standin:{PROFILE.name}-core"


def current_labels() -> dict[str, str]:
    """The labels a current core carries, computed here from the profile's files as the script
    computes them (``cat core packages | sha256sum``), not through the function under test."""
    run = subprocess.run(
        ["sha256sum"], input=PROFILE.core_file.read_bytes() + PROFILE.packages_file.read_bytes(), capture_output=True, check=True
    )
    return {
        "org.dialsgate.pins-sha256": run.stdout.split()[0].decode(),
        "org.dialsgate.standin-recipe": image_module.script_setting("RECIPE_VERSION"),
        "org.dialsgate.standin": "1",
    }


def stale(labels: dict[str, str], key: str) -> dict[str, str]:
    return {**labels, key: labels[key] + "0"}


def label_engine(tmp_path: Path, labels: dict[str, str]) -> Path:
    """An engine client that answers ``info`` and the script's label questions with ``labels``,
    and fails any other command (the script's rebuild starts with one: it then stops there)."""
    client = tmp_path / "bin" / "docker"
    client.parent.mkdir(parents=True)
    cases = "".join(f'    *\'"{key}"\'*) echo "{value}"; exit 0 ;;\n' for key, value in labels.items())
    client.write_text(
        "#!/bin/bash\n"
        '[ "$1" = info ] && exit 0\n'
        'if [ "$1 $2 $3" = "image inspect --format" ]; then\n'
        '  case "$4" in\n' + cases + "    *Labels*) echo '<no value>'; exit 0 ;;\n  esac\nfi\n"
        'echo unexpected "$*" >&2; exit 1\n'
    )
    client.chmod(0o755)
    return client


def script_says(tmp_path: Path, labels: dict[str, str]) -> subprocess.CompletedProcess:
    client = label_engine(tmp_path, labels)
    return subprocess.run(
        ["bash", str(image_module.STANDIN_SCRIPT), "--image", CORE, "--profile", str(PROFILE.folder), "--no-pull"],
        env={
            "PATH": "/usr/bin:/bin",
            "DIALSGATE_PYTHON": sys.executable,
            "DIALSGATE_ENGINE": str(client),
            "DIALSGATE_CACHE_DIR": str(tmp_path / "cache"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_gate_and_the_script_call_the_same_core_current(tmp_path):
    labels = current_labels()
    said = script_says(tmp_path, labels)
    assert said.returncode == 0 and "up to date" in said.stderr, said.stderr
    assert image_module.standin_is_current(labels, PROFILE)


@pytest.mark.parametrize("key", ["org.dialsgate.pins-sha256", "org.dialsgate.standin-recipe"])
def test_the_gate_and_the_script_call_the_same_core_stale(tmp_path, key):
    labels = stale(current_labels(), key)
    said = script_says(tmp_path, labels)
    assert "up to date" not in said.stderr and "rebuilding" in said.stderr, said.stderr
    assert not image_module.standin_is_current(labels, PROFILE)


def inspecting_engine(tmp_path: Path, described: dict[str, dict]) -> tuple[Engine, Path]:
    """An engine client describing the images of ``described`` (name -> Id and labels) and
    writing every other command it gets to a log."""
    log = tmp_path / "commands"
    folder = tmp_path / "described"
    folder.mkdir()
    for number, (name, facts) in enumerate(described.items()):
        (folder / f"{number}.name").write_text(name)
        (folder / f"{number}.json").write_text(json.dumps([{"Id": facts["id"], "Config": {"Labels": facts["labels"]}}]))
    client = tmp_path / "docker"
    client.write_text(
        "#!/bin/bash\n"
        'if [ "$1 $2" = "image inspect" ]; then\n'
        f'  for named in {folder}/*.name; do [ "$(cat "$named")" = "$3" ] && cat "${{named%.name}}.json" && exit 0; done\n'
        '  echo "Error: No such image: $3" >&2; exit 1\n'
        "fi\n"
        f'echo "$*" >> {log}\n'
    )
    client.chmod(0o755)
    return Engine(str(client)), log


def prepared(tmp_path, monkeypatch, described: dict[str, dict]) -> tuple[str, list[str], list[str]]:
    """The image to run, the commands the engine got besides inspections, and the script runs."""
    engine, log = inspecting_engine(tmp_path, described)
    scripts: list[str] = []
    monkeypatch.setattr(image_module, "_run_logged", lambda command, *args, **kwargs: scripts.append(" ".join(command)))
    target = image_module._prepare_image(TEMPLATE_IMAGE, lambda line: None, PROFILE, [], engine)
    return target, (log.read_text().splitlines() if log.exists() else []), scripts


def test_a_current_core_already_named_as_the_template_says_needs_neither_script_nor_tag(tmp_path, monkeypatch):
    core = {"id": "sha256:core", "labels": current_labels()}
    target, commands, scripts = prepared(tmp_path, monkeypatch, {TEMPLATE_IMAGE: core, CORE: core})
    assert (target, commands, scripts) == (CORE, [], [])


def test_a_current_core_not_yet_named_as_the_template_says_is_tagged(tmp_path, monkeypatch):
    core = {"id": "sha256:core", "labels": current_labels()}
    target, commands, scripts = prepared(tmp_path, monkeypatch, {CORE: core, TEMPLATE_IMAGE: {**core, "id": "sha256:older"}})
    assert (target, commands, scripts) == (CORE, [f"tag {CORE} {TEMPLATE_IMAGE}"], [])


@pytest.mark.parametrize("key", ["org.dialsgate.pins-sha256", "org.dialsgate.standin-recipe"])
def test_a_stale_core_goes_to_the_script_and_is_tagged(tmp_path, monkeypatch, key):
    core = {"id": "sha256:core", "labels": stale(current_labels(), key)}
    target, commands, scripts = prepared(tmp_path, monkeypatch, {TEMPLATE_IMAGE: core, CORE: core})
    assert target == CORE and commands == [f"tag {CORE} {TEMPLATE_IMAGE}"]
    assert len(scripts) == 1 and f"--image {CORE}" in scripts[0]


def test_no_core_goes_to_the_script(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALSGATE_NO_PULL", "1")
    target, commands, scripts = prepared(tmp_path, monkeypatch, {})
    assert target == CORE and commands == [f"tag {CORE} {TEMPLATE_IMAGE}"] and len(scripts) == 1


def test_a_real_image_of_the_templates_name_is_run_as_it_is(tmp_path, monkeypatch):
    target, commands, scripts = prepared(tmp_path, monkeypatch, {TEMPLATE_IMAGE: {"id": "sha256:real", "labels": {}}})
    assert (target, commands, scripts) == (TEMPLATE_IMAGE, [], [])
