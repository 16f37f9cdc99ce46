"""Running the gate: every layer (fast, parity, server) as its own pytest run against one model
folder, each test item one row of the verdict (``Row``).

Runs between ``dismcli build`` and ``dismcli package``. Any check that fails, errors, is
skipped, xfailed or deselected fails the gate (a gate that skips is worse than none); a layer
that runs no test at all fails it too. Exit code 0 only when everything passed; then it prints
the ``dismcli package`` command to run next.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dialsgate.checks import ADVICE, PASSING_RESULTS
from dialsgate.container.image import ensure_image
from dialsgate.contract.template import UnsupportedResourceType, load_contract
from dialsgate.gate.terminal import relay
from dialsgate.pytest_plugin.layers import layer_files
from dialsgate.report.concerns import forgeable

#: The checkout dialsgate runs from (this repository, with its tox.ini), or site-packages when installed.
REPOSITORY = Path(__file__).resolve().parents[2]


LAYERS = ("fast", "parity", "server")


DEFAULT_DIALS_URL = "https://dev-cmsdials-api.web.cern.ch"


NO_CONTAINER_REASON = (
    "--no-container: model code was judged on this machine (a host Python of the image's version), outside the "
    "serving image: not its C libraries, user or read-only folder, and with this machine's network and files in "
    "reach. A pre-deploy gate needs the image: this verdict cannot pass"
)


def contract_tests(layer: str) -> list[str]:
    """The layer's modules, shipped with dialsgate (dialsgate/pytest_plugin/layers)."""
    return [str(path) for path in layer_files(layer)]


@dataclass
class Row:
    layer: str
    check: str
    result: str
    reason: str = ""
    #: The row rests on the folder's own code, which could forge it (default: what the check
    #: declares, report.concerns.forgeable).
    forgeable: bool | None = None

    def __post_init__(self):
        if self.forgeable is None:
            self.forgeable = forgeable(self.layer, self.check)

    @property
    def passed(self) -> bool:
        """Does not fail the gate: passed, not applicable, or advice (recorded as failed under strict)."""
        return self.result in (*PASSING_RESULTS, ADVICE)


def rows_from_summary(layer: str, summary: dict | None, returncode: int) -> list[Row]:
    if summary is None:
        return [Row(layer, "(layer)", "error", f"pytest did not finish (exit {returncode}); see its output above")]
    rows = [Row(layer, r["check"], r["outcome"], r["reason"]) for r in summary["results"]]
    rows += [Row(layer, f"(collection) {e['nodeid']}", "error", e["reason"]) for e in summary["collection_errors"]]
    rows += [Row(layer, check, "deselected", "deselected: the gate runs every check") for check in summary["deselected"]]
    if not summary["results"]:
        rows.append(Row(layer, "(layer)", "failed", "no test ran in this layer"))
    if summary["exitstatus"] not in (0, 1) and all(row.passed for row in rows):
        rows.append(Row(layer, "(layer)", "error", f"pytest exit status {summary['exitstatus']}"))
    return rows


def layer_command(layer: str, runner: str, pytest_args: list[str]) -> list[str]:
    if runner == "tox":
        return [sys.executable, "-m", "tox", "run", "-e", layer, "--", *pytest_args]
    return [sys.executable, "-m", "pytest", *pytest_args]


def _clean_environment() -> dict:
    """The layers run in their own tox environments, not in the gate's."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TOX_") and key != "VIRTUAL_ENV"}
    own_bin = str(Path(sys.prefix) / "bin")
    if runner_is_venv():
        environment["PATH"] = os.pathsep.join(p for p in environment.get("PATH", "").split(os.pathsep) if p != own_bin)
    return environment


def runner_is_venv() -> bool:
    return sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def run_layer(layer: str, options: list[str], runner: str, work: Path, extra: list[str]) -> list[Row]:
    summary_file = work / f"{layer}.json"
    pytest_args = [
        *contract_tests(layer), *options, "--gate-summary", str(summary_file), "-p", "no:cacheprovider", "--color=no", *extra
    ]  # fmt: skip
    if runner == "tox":
        cwd, environment = REPOSITORY, _clean_environment()
    else:
        # Anywhere else (a model author's repository): our plugin and an empty ini, so their
        # pytest configuration and conftest files stay out of the gate.
        (work / "pytest.ini").write_text("[pytest]\n")
        pytest_args += ["-c", str(work / "pytest.ini"), "--rootdir", str(work), "-p", "dialsgate.pytest_plugin.plugin"]
        cwd, environment = (
            work,
            {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))},
        )
    command = layer_command(layer, runner, pytest_args)
    print(f"\n=== gate: layer {layer}: {shlex.join(command)}", flush=True)
    start = time.perf_counter()
    # Its output (pytest's, and the worker containers' messages of model code) reaches the
    # terminal made inert, stderr with stdout.
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    with process.stdout:
        relay(process.stdout.fileno())
    returncode = process.wait()
    print(f"=== gate: layer {layer} finished in {time.perf_counter() - start:.1f} s (exit {returncode})", flush=True)
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    return rows_from_summary(layer, summary, returncode)


@dataclass
class Verdict:
    rows: list[Row]
    contract: object | None

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row.passed for row in self.rows)

    def failures(self) -> list[Row]:
        return [row for row in self.rows if not row.passed]


def run_gate(args, extra: list[str]) -> Verdict:
    """Run the layers named in ``args`` and collect one row per check."""
    template = args.template.resolve()
    try:
        contract = load_contract(template, build_dir=args.build_dir, resource_key=args.resource)
    except UnsupportedResourceType as error:
        # One clear row: the gate cannot judge the folder, so it cannot pass it either.
        return Verdict([Row("gate", "resource_type_supported", "not supported", f"{template}: {error}")], None)
    except Exception as error:
        return Verdict([Row("gate", "load_contract", "error", f"{template}: {type(error).__name__}: {error}")], None)
    options = ["--dials-template", str(template)]
    if args.build_dir is not None:
        options += ["--dials-build-dir", str(args.build_dir.resolve())]
    if args.resource is not None:
        options += ["--dials-resource", args.resource]
    if args.reference_batch is not None:
        options += ["--dials-reference-batch", str(args.reference_batch.resolve())]
    if args.strict:
        options += ["--dials-strict"]
    if getattr(args, "ignore_known_failures", False):
        options += ["--dials-ignore-known-failures"]
    layers = [layer.strip() for layer in args.layers.split(",") if layer.strip()]
    unknown = sorted(set(layers) - set(LAYERS))
    if unknown:
        raise SystemExit(f"unknown layers {unknown}; choose from {LAYERS}")

    rows: list[Row] = []
    if getattr(args, "no_container", False):
        rows.append(Row("gate", "model_code_in_serving_image", "failed", NO_CONTAINER_REASON))
    if "server" in layers and not any(arg.startswith(("--server-url", "--dials-server-url")) for arg in extra):
        print(f"=== gate: serving image {contract.image}", flush=True)
        image_start = time.perf_counter()
        try:
            ensure_image(contract.image)
        except Exception as error:
            rows.append(Row("server", "serving_image", "error", f"{type(error).__name__}: {error}"))
        print(f"=== gate: serving image ready after {time.perf_counter() - image_start:.1f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="dialsgate-gate-") as work:
        for layer in layers:
            layer_rows = run_layer(layer, options, args.runner, Path(work), extra)
            rows += layer_rows
            if args.fail_fast and not all(row.passed for row in layer_rows):
                rows += [
                    Row(other, "(layer)", "not run", "--fail-fast after a failing layer")
                    for other in layers[layers.index(layer) + 1 :]
                ]
                break
    rows += [Row(layer, "(layer)", "not run", "the gate needs every layer") for layer in LAYERS if layer not in layers]
    return Verdict(rows, contract)
