"""The pre-deploy gate: every layer against one model folder, one verdict, and a report.

    tox -e gate                                                   # this repository's model
    tox -e gate -- --build-dir .dism-artifacts/build/<ResourceKey>  # exactly what dismcli package zips
    tox -e gate -- --template examples/nmf1d/template.yaml        # another DIALS MLServer model

Runs between ``dismcli build`` and ``dismcli package``. Any check that fails, errors, is
skipped, xfailed or deselected fails the gate (a gate that skips is worse than none); a layer
that runs no test at all fails it too. Exit code 0 only when everything passed; then it prints
the ``dismcli package`` command to run next.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .contract import UnsupportedResourceType, load_contract
from .gate_plugin import ADVICE, PASSING_RESULTS
from .junit import write_junit_xml
from .provenance import gate_version, provenance
from .report.concerns import CONCERNS, concern_of
from .testing import reference_batch_beside, settings

#: The checkout dialsgate runs from (this repository, with its tox.ini), or site-packages when installed.
REPOSITORY = Path(__file__).resolve().parent.parent
LAYERS = ("fast", "parity", "server")
DEFAULT_DIALS_URL = "https://dev-cmsdials-api.web.cern.ch"


def contract_tests(layer: str) -> list[str]:
    """The layer's modules, shipped with dialsgate (dialsgate/layers)."""
    from .layers import layer_files

    return [str(path) for path in layer_files(layer)]


@dataclass
class Row:
    layer: str
    check: str
    result: str
    reason: str = ""

    @property
    def passed(self) -> bool:
        """Does not fail the gate: passed, not applicable, or advice (recorded as failed under strict)."""
        return self.result in (*PASSING_RESULTS, ADVICE)


def check_name(nodeid: str) -> str:
    """tests/fast/test_contract.py::test_contract[check_input_dims[Occupancy]] -> check_input_dims[Occupancy]."""
    name = nodeid.split("::")[-1]
    match = re.fullmatch(r"test_(?:contract|parity|contract_over_transport)\[(.*)\]", name)
    return match.group(1) if match else f"{Path(nodeid.split('::')[0]).stem}::{name}"


def rows_from_summary(layer: str, summary: dict | None, returncode: int) -> list[Row]:
    if summary is None:
        return [Row(layer, "(layer)", "error", f"pytest did not finish (exit {returncode}); see its output above")]
    rows = [Row(layer, check_name(r["nodeid"]), r["outcome"], r["reason"]) for r in summary["results"]]
    rows += [Row(layer, f"(collection) {e['nodeid']}", "error", e["reason"]) for e in summary["collection_errors"]]
    rows += [
        Row(layer, check_name(nodeid), "deselected", "deselected: the gate runs every check") for nodeid in summary["deselected"]
    ]
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
    pytest_args = [*contract_tests(layer), *options, "--gate-summary", str(summary_file), "-p", "no:cacheprovider", *extra]
    if runner == "tox":
        cwd, environment = REPOSITORY, _clean_environment()
    else:
        # Anywhere else (a model author's repository): our plugin and an empty ini, so their
        # pytest configuration and conftest files stay out of the gate.
        (work / "pytest.ini").write_text("[pytest]\n")
        pytest_args += ["-c", str(work / "pytest.ini"), "--rootdir", str(work), "-p", "dialsgate.plugin"]
        cwd, environment = (
            work,
            {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))},
        )
    command = layer_command(layer, runner, pytest_args)
    print(f"\n=== gate: layer {layer}: {shlex.join(command)}", flush=True)
    start = time.perf_counter()
    returncode = subprocess.run(command, cwd=cwd, env=environment).returncode
    print(f"=== gate: layer {layer} finished in {time.perf_counter() - start:.1f} s (exit {returncode})", flush=True)
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    return rows_from_summary(layer, summary, returncode)


#: The reason column is never narrower than this (a narrow terminal wraps more, cuts nothing).
MIN_REASON_WIDTH = 40


def wrap_reason(reason: str, width: int) -> list[str]:
    """The whole reason in lines of at most ``width`` characters (its own line breaks kept)."""
    lines = []
    for paragraph in reason.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width, break_long_words=True, break_on_hyphens=False) or [""]
    return lines or [""]


def print_table(rows: list[Row], columns: int | None = None) -> None:
    """The full table (``-v``): one row per check; long reasons wrap onto indented lines, never cut."""
    width = min(max((len(row.check) for row in rows), default=10), 60)
    columns = columns or shutil.get_terminal_size(fallback=(160, 24)).columns
    indent = 7 + 1 + width + 1 + 10 + 1
    reason_width = max(MIN_REASON_WIDTH, columns - indent)
    print(f"\n{'layer':<7} {'check':<{width}} {'result':<10} reason")
    print(f"{'-' * 7} {'-' * width} {'-' * 10} {'-' * 30}")
    for row in rows:
        check = row.check if len(row.check) <= width else row.check[: width - 3] + "..."
        first, *rest = wrap_reason(row.reason, reason_width)
        print(f"{row.layer:<7} {check:<{width}} {row.result:<10} {first}".rstrip())
        for line in rest:
            print(" " * indent + line)


#: "... (see check_handler_loads)": the root row a "not run" row names (checks.CheckNotRun).
ROOT_OF_NOT_RUN = re.compile(r"\(see ([^)]+)\)\s*$")


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {result}" for result, count in sorted(counts.items()))


def _print_rows(title: str, rows: list[Row], columns: int) -> None:
    """Rows of one check over several transports (``check_x@http``) once, with where it was seen
    and the first one's full reason."""
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row.check.split("@", 1)[0], []).append(row)
    print(f"\n{title}")
    for check, members in grouped.items():
        where = ", ".join(
            dict.fromkeys(f"{m.layer}" + (f" @{m.check.split('@', 1)[1]}" if "@" in m.check else "") for m in members)
        )
        print(f"  {check}  ({where})")
        for line in wrap_reason(members[0].reason, max(MIN_REASON_WIDTH, columns - 6)):
            print(f"      {line}")


def print_verdict(rows: list[Row], columns: int | None = None, verbose: bool = False) -> None:
    """One screen: a line per concern with its counts, then every failure and every advice row
    with its full reason; rows not run behind a root row are counted under it. ``verbose``: the
    full table first."""
    columns = columns or shutil.get_terminal_size(fallback=(160, 24)).columns
    if verbose:
        print_table(rows, columns)
    by_concern: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = by_concern.setdefault(concern_of(row.layer, row.check), {})
        counts[row.result] = counts.get(row.result, 0) + 1
    print("\nverdict by concern (every row: -v, the report, verdict.json)")
    for concern in [*CONCERNS, *sorted(set(by_concern) - set(CONCERNS))]:
        if concern in by_concern:
            print(f"  {concern:<11} {_counts_text(by_concern[concern])}")
    behind: dict[str, int] = {}
    failing = []
    for row in rows:
        root = ROOT_OF_NOT_RUN.search(row.reason) if row.result == "not run" else None
        if root:
            behind[root.group(1)] = behind.get(root.group(1), 0) + 1
        elif not row.passed:
            failing.append(row)
    if failing:
        _print_rows(f"failures ({len(failing)}): each fails the gate", failing, columns)
    if behind:
        print("\nnot run behind a failed row: " + "; ".join(f"{count} behind {root}" for root, count in behind.items()))
    advice = [row for row in rows if row.result == ADVICE]
    if advice:
        _print_rows(
            f"advice ({len(advice)}): hardening against requests DIALS never sends; fails the gate only under --strict",
            advice,
            columns,
        )
    print("\n" + _counts_text({row.result: sum(1 for r in rows if r.result == row.result) for row in rows}))


def print_provenance(origin: dict | None) -> None:
    """Two lines: what was judged (folder and model file hashes), by what (gate, image), how (strict)."""
    if not origin or "folder_sha256" not in origin:
        return
    image = origin.get("image", {})
    print(
        f"judged: {origin['folder']} (sha256 {origin['folder_sha256'][:12]}), model file sha256 "
        f"{(origin['model_file_sha256'] or 'missing')[:12]}, batch {origin['reference_batch'] or 'sample data'}"
    )
    print(
        f"by: dialsgate {origin['dialsgate']}, image {image.get('name')} ({image.get('kind')}"
        f"{', pins ' + image['pins_sha256'][:12] if image.get('pins_sha256') else ''}), strict {origin['strict']}"
    )


def next_steps(contract, dials_url: str) -> list[str]:
    """What to run after a pass; the gate is never skipped between build and package.

    Checked on a dismcli build folder: package it. Checked from CodeUri: build with dismcli,
    gate exactly the built folder (what will be zipped), and only then package.
    """
    package = shlex.join(["dismcli", "package", "-u", dials_url])
    if contract.built:
        root = contract.code_dir.parent.parent.parent  # <root>/.dism-artifacts/build/<Key>
        return [f"cd {shlex.quote(str(root))} && {package}"]
    folder = contract.template_path.parent
    build_dir = folder / ".dism-artifacts" / "build" / contract.resource_key
    gate = ["python", "-m", "dialsgate", "check", str(contract.template_path), "--build-dir", str(build_dir)]
    return [
        f"cd {shlex.quote(str(folder))} && "
        + shlex.join(["dismcli", "build", "-f", contract.template_path.name, "-u", dials_url]),
        shlex.join(gate) + "   # the gate again, on exactly the files dismcli package zips",
        f"cd {shlex.quote(str(folder))} && {package}   # only after that gate passed",
    ]


def picture_hooks(contract) -> list[str]:
    """The report picture hooks the author lists in dialsgate.toml (``report_pictures``); a
    ``file.py:function`` spec is relative to the template's folder. The report knows no model."""
    specs = []
    for spec in settings(contract).get("report_pictures", []):
        target, _, function = str(spec).rpartition(":")
        if target.endswith(".py") and not Path(target).is_absolute():
            spec = f"{contract.template_path.parent / target}:{function}"
        specs.append(spec)
    return specs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Pre-deploy gate: run every layer, refuse any skip, print a verdict.")
    parser.add_argument(
        "--template", type=Path, default=Path("template.yaml"), help="the DISM template (default ./template.yaml)"
    )
    parser.add_argument("--build-dir", type=Path, help="a dismcli .dism-artifacts/build/<ResourceKey> folder")
    parser.add_argument("--resource", help="resource key, when the template has several MLServer resources")
    parser.add_argument("--reference-batch", type=Path)
    parser.add_argument(
        "--layers", default=",".join(LAYERS), help="comma-separated subset of fast,parity,server (a subset never passes the gate)"
    )
    parser.add_argument(
        "--runner", choices=("tox", "here"), default="tox", help="tox: each layer in its own environment; here: this interpreter"
    )
    parser.add_argument("--fail-fast", action="store_true", help="stop after the first layer with a failure")
    parser.add_argument(
        "--report",
        type=Path,
        help="folder for the HTML report and verdict.json (default ./report/<ResourceKey>-<hash>, see README)",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="write nothing to disk (no HTML report, no verdict.json unless --verdict-json)"
    )
    parser.add_argument(
        "--verdict-json", type=Path, help="also write the verdict rows as JSON to this file (even with --no-report)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="advice rows (hardening against requests DIALS never sends) fail the gate (also: strict = true in dialsgate.toml)",
    )
    parser.add_argument(
        "--junit-xml", type=Path, help="also write every row of every layer as one JUnit test case (merge request test reports)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print the full table of rows before the summary")
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
    layers = [layer.strip() for layer in args.layers.split(",") if layer.strip()]
    unknown = sorted(set(layers) - set(LAYERS))
    if unknown:
        raise SystemExit(f"unknown layers {unknown}; choose from {LAYERS}")

    rows: list[Row] = []
    if "server" in layers and not any(arg.startswith(("--server-url", "--dials-server-url")) for arg in extra):
        from .container import ensure_image

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


def default_report_folder(template: Path, build_dir: Path | None, resource_key: str) -> Path:
    """report/<ResourceKey>-<8 hex>: the hash of the resolved template path and build folder.

    Two models with the same ResourceKey (two checkouts, a copy, the CodeUri and the build
    folder of one template) never share a folder, and the same inputs always reuse theirs.
    """
    identity = f"{Path(template).resolve()}\0{Path(build_dir).resolve() if build_dir is not None else ''}\0{resource_key}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    safe_key = re.sub(r"[^A-Za-z0-9_.-]", "_", resource_key) or "model"
    return Path.cwd() / "report" / f"{safe_key}-{digest}"


VERDICT_FILE = "verdict.json"


def write_verdict_json(rows: list[Row], path: Path, provenance: dict | None = None) -> Path:
    """The verdict as JSON: ``{"provenance": {...}, "rows": [{layer, check, result, reason}, ...]}``
    (full reasons, in the gate's order; provenance: dialsgate.provenance)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"provenance": provenance, "rows": [asdict(row) for row in rows]}
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def read_verdict_rows(path: Path) -> list[dict]:
    """The rows of a verdict.json (also the plain list older gates wrote)."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    return document["rows"] if isinstance(document, dict) else document


def verdict_provenance(verdict: Verdict, args) -> dict | None:
    if verdict.contract is None:
        return {"dialsgate": gate_version(), "template": str(Path(args.template).resolve())}
    batch = args.reference_batch.resolve() if args.reference_batch is not None else reference_batch_beside(verdict.contract)
    strict = bool(args.strict or settings(verdict.contract).get("strict", False))
    return provenance(verdict.contract, strict=strict, reference_batch=batch, with_image="server" in args.layers)


def main(argv=None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    start = time.perf_counter()
    verdict = run_gate(args, extra)
    print_verdict(verdict.rows, verbose=args.verbose)
    origin = verdict_provenance(verdict, args)
    print_provenance(origin)
    if args.junit_xml is not None:
        print(f"junit: {write_junit_xml(verdict.rows, args.junit_xml, origin)}")
    if args.verdict_json is not None:
        print(f"verdict: {write_verdict_json(verdict.rows, args.verdict_json, origin)}")
    if not args.no_report:
        key = verdict.contract.resource_key if verdict.contract is not None else (args.resource or Path(args.template).stem)
        folder = args.report or default_report_folder(args.template, args.build_dir, key)
        print(f"verdict: {write_verdict_json(verdict.rows, folder / VERDICT_FILE, origin)}")
        if verdict.contract is not None:
            try:
                from .report import write_report

                index = write_report(
                    verdict.contract,
                    folder,
                    reference_batch=args.reference_batch,
                    verdict_rows=[asdict(row) for row in verdict.rows],
                    provenance=origin,
                    picture_hooks=picture_hooks(verdict.contract),
                )
                print(f"report: {index}")
            except Exception as error:  # the report illustrates the verdict; it never changes it
                print(f"report not written: {type(error).__name__}: {error}")
    print(f"\ngate wall time {time.perf_counter() - start:.1f} s")
    if verdict.passed:
        steps = next_steps(verdict.contract, args.dials_url)
        print("\nGATE PASSED. Next:\n" + "\n".join(f"  {number}. {step}" for number, step in enumerate(steps, 1)))
        return 0
    print("\nGATE FAILED: fix the rows that did not pass; nothing should be packaged.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
