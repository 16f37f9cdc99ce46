"""Our own report has the pixel model's pictures when the gate runs its hooks, run as tox's gate
environment and an installed dialsgate run it: dialsgate importable, the model's development
code (model_src) not on sys.path. The hook comes from dialsgate.toml (``report_pictures``, a
file of model_src/pixelnmf_train that imports its sibling modules).

Needs the report's packages (requirements/report.txt) and a container engine (the reference
batch is answered in the worker container).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[2]
TEMPLATE = REPOSITORY / "template.yaml"
BATCH = REPOSITORY / "tests" / "data" / "reference_batch.npz"

#: The report writer as ``dialsgate check --run-report-hooks`` calls it, with the hooks of dialsgate.toml.
WRITE_REPORT = """
import importlib.util, sys
from pathlib import Path
from dialsgate.contract.template import load_contract
from dialsgate.report import write_report
from dialsgate.report.hooks import configured_hooks

if importlib.util.find_spec("pixelnmf_train") is not None:
    sys.exit("pixelnmf_train is importable here: this run would not show the hook's own import path")
contract = load_contract(Path(sys.argv[1]))
hooks = configured_hooks(contract)
print("hooks:", hooks)
write_report(contract, Path(sys.argv[2]), reference_batch=Path(sys.argv[3]), verdict_rows=[], picture_hooks=hooks)
"""


def test_the_pixel_report_has_its_pictures_with_the_model_code_off_sys_path(tmp_path):
    # Every 4th lumisection of the reference batch: flagged and clean ones, a quarter to draw.
    with np.load(BATCH) as archive:
        subset = {name: archive[name][::4] for name in archive.files}
    batch = tmp_path / "reference_batch.npz"
    np.savez(batch, **subset)
    report = tmp_path / "report"
    environment = {key: value for key, value in os.environ.items() if key != "DIALSGATE_REPORT_PICTURES"}
    environment.update(PYTHONPATH=str(REPOSITORY), PYTHONDONTWRITEBYTECODE="1")
    finished = subprocess.run(
        [sys.executable, "-c", WRITE_REPORT, str(TEMPLATE), str(report), str(batch)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert finished.returncode == 0, f"{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
    assert "report_pictures.py:pictures" in finished.stdout, "the hook comes from dialsgate.toml"
    html = (report / "index.html").read_text(encoding="utf-8")
    assert "the hook failed" not in html, re.findall(r"the hook failed[^<]*", html)
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    written = sorted(path.relative_to(report).as_posix() for path in report.rglob("*.png"))
    assert images and sorted(images) == written, f"{images} != {written}"


def _package(root: Path, name: str) -> Path:
    """``root/name``: a package whose hook imports its sibling module when it is called."""
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("VALUE = 'from the sibling module'\n")
    (package / "hook.py").write_text(
        f"def pictures(contract, answers, indices, out_dir):\n    from {name}.helper import VALUE\n    return VALUE\n"
    )
    return package / "hook.py"


def test_a_hook_file_in_a_package_imports_its_siblings_off_sys_path(tmp_path):
    from dialsgate.report.hooks import load_spec

    name = "dialsgate_test_hook_package"
    hook = _package(tmp_path / "src", name)
    assert name not in sys.modules and not any((Path(p) / name).exists() for p in sys.path if p)
    try:
        function = load_spec(f"{hook}:pictures")
        assert function(None, None, [], tmp_path) == "from the sibling module"
        assert function.__module__ == f"{name}.hook"
    finally:
        for module in [module for module in sys.modules if module.split(".")[0] == name]:
            del sys.modules[module]


def test_a_hook_file_in_a_package_already_imported_from_elsewhere_loads_on_its_own(tmp_path):
    """A package of that name already imported (``json`` here) is not replaced: the file alone."""
    from dialsgate.report.hooks import load_spec

    hook = _package(tmp_path, "json")
    (hook.parent / "hook.py").write_text("def pictures(contract, answers, indices, out_dir):\n    return __name__\n")
    function = load_spec(f"{hook}:pictures")
    assert function(None, None, [], tmp_path) == "dialsgate_report_hook_hook" and "json.hook" not in sys.modules
