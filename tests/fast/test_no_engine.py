"""Without a container engine, `pytest -k fast` still runs everything that runs no model code, and
says in one line how many checks that run model code were not run, and why."""

from __future__ import annotations

from pathlib import Path

from dialsgate.container import engine

pytest_plugins = ("pytester",)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nmf1d" / "template.yaml"


def test_without_an_engine_model_code_checks_are_not_run_in_one_line(pytester, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{pytester.path}/no-engine.sock")
    monkeypatch.delenv("DIALSGATE_ENGINE", raising=False)
    monkeypatch.setattr(engine, "ANSWER_PAUSES", ())  # absent for sure: not asked again
    result = pytester.runpytest_inprocess(
        "-p", "dialsgate.pytest_plugin.plugin", "--noconftest", "--dials-template", str(EXAMPLE), "--dials-layers", "fast", "-rs", "-p", "no:cacheprovider"
    )  # fmt: skip
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes["passed"] >= 10 and outcomes["skipped"] >= 20, result.stdout.str()[-3000:]
    lines = [line for line in result.stdout.lines if "checks that run model code not run" in line]
    assert len(lines) == 1 and f"dialsgate: {outcomes['skipped']} checks" in lines[0], result.stdout.str()[-3000:]
    assert "no container engine answers" in lines[0] and "start Docker or Podman" in lines[0]
    folded = [line for line in result.stdout.lines if line.startswith("SKIPPED [")]
    assert len(folded) == 1 and folded[0].startswith(f"SKIPPED [{outcomes['skipped']}]"), folded
