"""A folder's report hooks (``report_pictures`` of its dialsgate.toml) are its code, run on this
machine outside the sandbox: no generic entry point of the gate passes ``--run-report-hooks``.
Only the tox environments of this repository's own templates may (tests/report checks that
``dialsgate check`` runs none without it)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from dialsgate.gate.cli import check_parser

REPOSITORY = Path(__file__).resolve().parents[2]
HOOKS = "--run-report-hooks"


def _tox_commands() -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPOSITORY / "tox.ini")
    return {
        section.removeprefix("testenv:"): parser[section].get("commands", "")
        for section in parser.sections()
        if section.startswith("testenv:")
    }


def test_no_tox_environment_that_takes_a_template_runs_hooks():
    gates = {env: command for env, command in _tox_commands().items() if "dialsgate check" in command}
    assert {"gate", "gate-2025f", "gate-any"} <= set(gates)
    for env, command in gates.items():
        template = command.split("dialsgate check", 1)[1].split()[0]
        if HOOKS in command:
            # Our own template, named literally: a path from the command line never gets here.
            assert "{posargs" not in template and (REPOSITORY / template).is_file(), (env, command)
    assert HOOKS not in gates["gate-any"] and "{posargs:template.yaml}" in gates["gate-any"]


def test_the_gate_takes_no_second_template():
    """`tox -e gate -- other/template.yaml` must not judge ours while looking as if it judged that one."""
    from dialsgate.gate.cli import check

    args, extra = check_parser().parse_known_args(["template.yaml", "--no-report", "other/template.yaml"])
    try:
        check(args, extra)
    except SystemExit as stop:
        assert "other/template.yaml" in str(stop) and "gate-any" in str(stop)
    else:
        raise AssertionError("a second template was accepted")


def _bin_gate(tmp_path: Path, *arguments: str) -> list[str]:
    """bin/gate in a copy of the repository's layout whose .ci/setup and tox only say what they were asked."""
    (tmp_path / "bin").mkdir(parents=True)
    shutil.copy(REPOSITORY / "bin" / "gate", tmp_path / "bin" / "gate")
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "setup").write_text("step() { :; }\n")
    tox = tmp_path / ".tools" / "bin" / "tox"
    tox.parent.mkdir(parents=True)
    tox.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    tox.chmod(0o755)
    run = subprocess.run(
        ["bash", str(tmp_path / "bin" / "gate"), *arguments], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_bin_gate_runs_hooks_only_for_this_repositorys_template(tmp_path):
    assert _bin_gate(tmp_path / "a") == ["-e", "gate", "--"]
    assert _bin_gate(tmp_path / "b", "-v") == ["-e", "gate", "--", "-v"]
    assert _bin_gate(tmp_path / "c", "someone/template.yaml", "-v") == ["-e", "gate-any", "--", "someone/template.yaml", "-v"]


def test_the_gitlab_job_runs_no_hooks():
    job = yaml.safe_load((REPOSITORY / "docs" / "ci" / "dialsgate.gitlab-ci.yml").read_text())["dialsgate"]
    assert any("dialsgate check" in line for line in job["script"])
    assert not any(HOOKS in line for line in [*job.get("before_script", []), *job["script"]])


def test_hooks_are_off_unless_asked():
    assert check_parser().parse_args(["t.yaml"]).run_report_hooks is False
    assert check_parser().parse_args(["t.yaml", HOOKS]).run_report_hooks is True


def test_the_docs_show_no_generic_command_with_hooks():
    for doc in ("README.md", "docs/gate.md", "docs/gitlab-ci.md", "CONTRIBUTING.md"):
        for line in (REPOSITORY / doc).read_text(encoding="utf-8").splitlines():
            assert "tox -e gate -- " not in line, f"{doc}: {line.strip()} (any folder: tox -e gate-any)"
