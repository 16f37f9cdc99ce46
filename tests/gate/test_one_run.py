"""One gate run on a plain third-party folder is one process: the template parsed once, one
worker container and one served container (read from the engine's events), no pytest process,
and a verdict equal to what `pytest --dials-template` gives for the same checks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from named_copies import copy_named

from dialsgate.container.engine import Engine
from dialsgate.container.serve import SERVED_NAME_PREFIX
from dialsgate.container.worker import WORKER_NAME_PREFIX
from dialsgate.contract import template as template_module
from dialsgate.gate import cli

pytestmark = pytest.mark.gate


def runs_pytest(argv: list[str]) -> bool:
    """``pytest ...``, ``python -m pytest ...`` or ``tox ...`` (whose environments run pytest)."""
    names = [Path(part).name for part in argv]
    modules = [argv[index + 1] for index, part in enumerate(argv[:-1]) if part == "-m"]
    return bool({"pytest", "py.test", "tox"} & {*names, *modules})


def test_one_run_one_parse_one_worker_one_served_container_no_pytest(tmp_path, monkeypatch):
    template, name = copy_named(tmp_path, "sklearn_nmf_plain", "onerun")
    template_bytes = template.read_bytes()
    parses = []
    real_parse = template_module.parse_yaml
    monkeypatch.setattr(
        template_module, "parse_yaml", lambda text, *a, **k: parses.append(text == template_bytes) or real_parse(text, *a, **k)
    )
    started = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):
        def __init__(self, args, *rest, **options):
            started.append([str(part) for part in (args if isinstance(args, (list, tuple)) else [args])])
            super().__init__(args, *rest, **options)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    engine = Engine.from_settings()
    with engine.watching("type=container", "event=create") as events:
        code = cli.main(["check", str(template), "--report", str(tmp_path / "report")])

    rows = json.loads((tmp_path / "report" / "verdict.json").read_text())["rows"]
    assert code == 0, [row for row in rows if row["result"] not in ("passed", "not applicable", "advice")]
    assert parses.count(True) == 1, f"the template was parsed {parses.count(True)} times"
    assert [argv for argv in started if runs_pytest(argv)] == []
    created = [event["name"] for event in events]
    workers = [found for found in created if found and found.startswith(f"{WORKER_NAME_PREFIX}{name}-")]
    served = [found for found in created if found and found.startswith(f"{SERVED_NAME_PREFIX}{name}-")]
    assert (len(workers), len(served)) == (1, 1), created
    assert {row["layer"] for row in rows} == {"fast", "parity", "server"}
    assert {row["resource"] for row in rows} == {"NMFPlain"}
