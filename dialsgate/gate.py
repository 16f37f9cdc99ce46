"""The pre-deploy gate: every layer against one model folder, one verdict, and a report.

    tox -e gate                                                   # this repository's model
    tox -e gate -- --build-dir .dism-artifacts/build/PixelNMF     # exactly what dismcli package zips
    tox -e gate -- --template examples/nmf1d/template.yaml        # another DIALS MLServer model

Runs between ``dismcli build`` and ``dismcli package``. Any check that fails, errors, is
skipped, xfailed or deselected fails the gate (a gate that skips is worse than none); a layer
that runs no test at all fails it too. Exit code 0 only when everything passed; then it prints
the ``dismcli package`` command to run next.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .contract import load_contract

REPOSITORY = Path(__file__).resolve().parent.parent
LAYERS = ("fast", "parity", "server")
DEFAULT_DIALS_URL = "https://dev-cmsdials-api.web.cern.ch"
#: Tests of this repository's own model and tooling; they run when the gate checks this
#: repository's template, never for another model.
PROJECT_TESTS = {"fast": ["tests/fast", "tests/model"]}
CONTRACT_TESTS = {"fast": ["tests/fast/test_contract.py"], "parity": ["tests/parity"], "server": ["tests/server"]}


@dataclass
class Row:
    layer: str
    check: str
    result: str
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.result == "passed"


def check_name(nodeid: str) -> str:
    """tests/fast/test_contract.py::test_contract[check_input_dims[BPix3]] -> check_input_dims[BPix3]."""
    name = nodeid.split("::")[-1]
    match = re.fullmatch(r"test_(?:contract|parity)\[(.*)\]", name)
    return match.group(1) if match else f"{Path(nodeid.split('::')[0]).stem}::{name}"


def rows_from_summary(layer: str, summary: dict | None, returncode: int) -> list[Row]:
    if summary is None:
        return [Row(layer, "(layer)", "error", f"pytest did not finish (exit {returncode}); see its output above")]
    rows = [Row(layer, check_name(r["nodeid"]), r["outcome"], r["reason"]) for r in summary["results"]]
    rows += [Row(layer, f"(collection) {e['nodeid']}", "error", e["reason"]) for e in summary["collection_errors"]]
    rows += [Row(layer, check_name(nodeid), "deselected", "deselected: the gate runs every check") for nodeid in summary["deselected"]]
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


def run_layer(layer: str, options: list[str], runner: str, work: Path, is_own_template: bool, extra: list[str]) -> list[Row]:
    summary_file = work / f"{layer}.json"
    paths = (PROJECT_TESTS.get(layer) if is_own_template else None) or CONTRACT_TESTS[layer]
    pytest_args = [*paths, *options, "--gate-summary", str(summary_file), "-p", "no:cacheprovider", *extra]
    command = layer_command(layer, runner, pytest_args)
    print(f"\n=== gate: layer {layer}: {shlex.join(command)}", flush=True)
    start = time.perf_counter()
    environment = _clean_environment() if runner == "tox" else dict(os.environ)
    returncode = subprocess.run(command, cwd=REPOSITORY, env=environment).returncode
    print(f"=== gate: layer {layer} finished in {time.perf_counter() - start:.1f} s (exit {returncode})", flush=True)
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    return rows_from_summary(layer, summary, returncode)


def print_verdict(rows: list[Row]) -> None:
    width = min(max((len(row.check) for row in rows), default=10), 60)
    print(f"\n{'layer':<7} {'check':<{width}} {'result':<10} reason")
    print(f"{'-' * 7} {'-' * width} {'-' * 10} {'-' * 30}")
    for row in rows:
        reason = row.reason.replace("\n", " ")[:160]
        print(f"{row.layer:<7} {row.check[:width]:<{width}} {row.result:<10} {reason}")
    counts = {}
    for row in rows:
        counts[row.result] = counts.get(row.result, 0) + 1
    print("\n" + ", ".join(f"{count} {result}" for result, count in sorted(counts.items())))


def package_command(contract, dials_url: str) -> str:
    """The dismcli package call, run where .dism-artifacts lives."""
    if contract.built:
        root = contract.code_dir.parent.parent.parent  # <root>/.dism-artifacts/build/<Key>
        prefix = f"cd {shlex.quote(str(root))} && "
    else:
        build = shlex.join(["dismcli", "build", "-f", contract.template_path.name, "-u", dials_url])
        prefix = f"cd {shlex.quote(str(contract.template_path.parent))} && {build} && "
    return prefix + shlex.join(["dismcli", "package", "-u", dials_url])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Pre-deploy gate: run every layer, refuse any skip, print a verdict.")
    parser.add_argument("--template", type=Path, default=REPOSITORY / "template.yaml")
    parser.add_argument("--build-dir", type=Path, help="a dismcli .dism-artifacts/build/<ResourceKey> folder")
    parser.add_argument("--resource", help="resource key, when the template has several MLServer resources")
    parser.add_argument("--reference-batch", type=Path)
    parser.add_argument("--layers", default=",".join(LAYERS), help="comma-separated subset of fast,parity,server (a subset never passes the gate)")
    parser.add_argument("--runner", choices=("tox", "here"), default="tox", help="tox: each layer in its own environment; here: this interpreter")
    parser.add_argument("--fail-fast", action="store_true", help="stop after the first layer with a failure")
    parser.add_argument("--report", type=Path, help="folder for the HTML report (default ./report/<ResourceKey>)")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--dials-url", default=DEFAULT_DIALS_URL)
    return parser


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
    except Exception as error:
        return Verdict([Row("gate", "load_contract", "error", f"{template}: {type(error).__name__}: {error}")], None)
    options = ["--template", str(template)]
    if args.build_dir is not None:
        options += ["--build-dir", str(args.build_dir.resolve())]
    if args.resource is not None:
        options += ["--resource", args.resource]
    if args.reference_batch is not None:
        options += ["--reference-batch", str(args.reference_batch.resolve())]
    layers = [layer.strip() for layer in args.layers.split(",") if layer.strip()]
    unknown = sorted(set(layers) - set(LAYERS))
    if unknown:
        raise SystemExit(f"unknown layers {unknown}; choose from {LAYERS}")
    is_own_template = template == (REPOSITORY / "template.yaml").resolve()

    rows: list[Row] = []
    if "server" in layers and not any(arg.startswith("--server-url") for arg in extra):
        from .container import ensure_image

        print(f"=== gate: serving image {contract.image}", flush=True)
        image_start = time.perf_counter()
        try:
            ensure_image(contract.image, REPOSITORY)
        except Exception as error:
            rows.append(Row("server", "serving_image", "error", f"{type(error).__name__}: {error}"))
        print(f"=== gate: serving image ready after {time.perf_counter() - image_start:.1f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="dialsgate-gate-") as work:
        for layer in layers:
            layer_rows = run_layer(layer, options, args.runner, Path(work), is_own_template, extra)
            rows += layer_rows
            if args.fail_fast and not all(row.passed for row in layer_rows):
                rows += [Row(other, "(layer)", "not run", "--fail-fast after a failing layer") for other in layers[layers.index(layer) + 1 :]]
                break
    rows += [Row(layer, "(layer)", "not run", "the gate needs every layer") for layer in LAYERS if layer not in layers]
    return Verdict(rows, contract)


def main(argv=None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    start = time.perf_counter()
    verdict = run_gate(args, extra)
    print_verdict(verdict.rows)
    if verdict.contract is not None and not args.no_report:
        try:
            from .report import write_report

            folder = args.report or REPOSITORY / "report" / verdict.contract.resource_key
            index = write_report(verdict.contract, folder, reference_batch=args.reference_batch, verdict_rows=[row.__dict__ for row in verdict.rows])
            print(f"report: {index}")
        except Exception as error:  # the report illustrates the verdict; it never changes it
            print(f"report not written: {type(error).__name__}: {error}")
    print(f"\ngate wall time {time.perf_counter() - start:.1f} s")
    if verdict.passed:
        print("\nGATE PASSED. Next:\n  " + package_command(verdict.contract, args.dials_url))
        return 0
    print("\nGATE FAILED: fix the rows that did not pass; nothing should be packaged.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
