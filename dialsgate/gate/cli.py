"""The ``dialsgate`` command: ``dialsgate check TEMPLATE`` (the pre-deploy gate: every layer, one
verdict, the report) and ``dialsgate build -f TEMPLATE`` (dismcli's build folder, offline).

    dialsgate check path/to/template.yaml [--build-dir B | --package ZIP] [--resource R] [--reference-batch F]
                    [--layers fast,parity,server] [--report DIR] [--strict] [--ignore-known-failures]
                    [--run-report-hooks] [-v] [--junit-xml FILE]

Exit status 0 only on a pass. Serving environments and stand-in images are cached under
~/.cache/dialsgate (DIALSGATE_CACHE_DIR, XDG_CACHE_HOME), shared between projects.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
import time
from dataclasses import asdict
from pathlib import Path

from dialsgate.checks import explore
from dialsgate.contract.build import main as build_main
from dialsgate.environment.runtime import NO_CONTAINER_ENV
from dialsgate.gate.admission import admitted_package, package_steps, refused_verdict, with_package_facts
from dialsgate.gate.junit import write_junit_xml
from dialsgate.gate.runner import DEFAULT_DIALS_URL, LAYERS, run_gate
from dialsgate.gate.terminal import inert_terminal
from dialsgate.gate.verdict import (
    MIN_COLUMNS,
    MIN_SUMMARY_LINES,
    SCREEN_LINES,
    VERDICT_FILE,
    default_report_folder,
    next_steps,
    print_verdict,
    provenance_lines,
    resource_folder_name,
    sandbox_lines,
    screen_rows,
    verdict_provenance,
    write_verdict_json,
)
from dialsgate.plainfiles import NotPlain, open_plain
from dialsgate.report import write_report
from dialsgate.report.hooks import configured_hooks


def add_check_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``dialsgate check`` (one spelling each); unknown ones go to each layer's pytest."""
    parser.add_argument(
        "template", nargs="?", type=Path, default=Path("template.yaml"), help="the DISM template (default ./template.yaml)"
    )
    parser.add_argument("--build-dir", type=Path, help="a dismcli .dism-artifacts/build/<ResourceKey> folder")
    parser.add_argument("--package", type=Path, help="the zip dismcli package uploaded (TEMPLATE: its package/template.yaml)")
    parser.add_argument(
        "--resource", help="judge this resource only (the verdict then says the others were not judged, and cannot pass)"
    )
    parser.add_argument("--reference-batch", type=Path)
    parser.add_argument(
        "--layers", default=",".join(LAYERS), help="comma-separated subset of fast,parity,server (a subset never passes the gate)"
    )
    parser.add_argument(
        "--server-url", help="run the server layer against this running server (its model ready) instead of serving the folder"
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
        "--ignore-known-failures",
        action="store_true",
        help="judge the folder without the [known_failures] of its dialsgate.toml (a maintainer judging someone "
        "else's folder, with --strict: its declared advice rows then fail)",
    )
    parser.add_argument(
        "--junit-xml", type=Path, help="also write every row of every layer as one JUnit test case (merge request test reports)"
    )
    parser.add_argument(
        "--no-container",
        action="store_true",
        help="machines without Docker or Podman: run model code on this machine (a host Python of the image's version), "
        "outside the serving image; the verdict then cannot pass",
    )
    parser.add_argument(
        "--run-report-hooks",
        action="store_true",
        help="run the report picture hooks the template's dialsgate.toml names (report_pictures): they run on this "
        "machine, outside any container, so only for a repository you trust (your own)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print the full table of rows before the summary")
    parser.add_argument(
        "--hypothesis-seed",
        default=None,
        help="the seed of check_contract_explored's generated requests (default 22; a failure's reason names its replay)",
    )
    parser.add_argument("--dials-url", default=DEFAULT_DIALS_URL)
    return parser


def check_parser() -> argparse.ArgumentParser:
    return add_check_arguments(
        argparse.ArgumentParser(prog="dialsgate check", description="Pre-deploy gate: every layer, no skip, one verdict.")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialsgate", description="Conformance gate for DIALS MLServer model folders.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_check_arguments(commands.add_parser("check", help="run every layer on a model folder and print the verdict"))
    commands.add_parser("build", help="write dismcli's build folder offline (.dism-artifacts/build)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = build_parser().parse_known_args(argv)
    if args.command == "build":
        return build_main(argv[1:])
    return check(args, extra)


#: The exit status of a command line the gate cannot run (argparse's): nothing was judged or written.
ARGUMENT_ERROR = 2


def template_argument_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the template to judge (an argument error), or None.

    Missing, a folder, a FIFO or device, or a file this user cannot open: no judgment of a
    folder, so no verdict and no report. A symbolic link is left to the gate, which refuses it
    as a row of the verdict (the folder's template is not a plain file)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as error:
        return f"template {path}: {error.strerror or error}"
    if stat.S_ISLNK(mode):
        return None
    if stat.S_ISDIR(mode):
        return f"template {path} is a folder: name the template in it (e.g. {path / 'template.yaml'})"
    try:
        with open_plain(path):
            return None
    except NotPlain as error:
        return f"template {path}: {error}"
    except OSError as error:
        return f"template {path}: {error.strerror or error}"


def check(args, extra: list[str]) -> int:
    """Run the gate as ``args`` (check_parser's) say; 0 only on a pass, ``ARGUMENT_ERROR`` (with
    nothing written) when the template cannot be read. Everything it prints is made inert
    (``gate.terminal``): a folder's strings reach the terminal as visible escapes."""
    with inert_terminal():
        problem = template_argument_problem(Path(args.template))
        if problem:
            print(f"dialsgate check: error: {problem}", file=sys.stderr)
            return ARGUMENT_ERROR
        with admitted_package(args):  # --package: args name the unpacked zip (or why it was refused)
            return _check(args, extra)


def _check(args, extra: list[str]) -> int:
    templates = [arg for arg in extra if not arg.startswith("-") and arg.endswith((".yaml", ".yml"))]
    if templates:
        # `tox -e gate -- other/template.yaml` would judge this repository's template, not that one.
        raise SystemExit(
            f"dialsgate check judges one template ({args.template}); also given: {', '.join(templates)} "
            "(tox -e gate judges this repository's template.yaml; any other folder: tox -e gate-any -- path/to/template.yaml)"
        )
    if extra:
        print(f"dialsgate check: error: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return ARGUMENT_ERROR
    start = time.perf_counter()
    if args.no_container:
        os.environ[NO_CONTAINER_ENV] = "1"  # the report's facts inherit it
    if args.hypothesis_seed is not None:
        explore.use_seed(args.hypothesis_seed)
    verdict = refused_verdict(args) or run_gate(args, extra)
    origin = with_package_facts(verdict_provenance(verdict, args), args)
    if origin is not None and verdict.resources:
        # Every resource of the template and its type: the rows say which were judged.
        origin["resources"] = dict(verdict.resources)
    columns = max(shutil.get_terminal_size(fallback=(160, 24)).columns, MIN_COLUMNS)
    steps = (package_steps(args) or next_steps(verdict.contract, args.dials_url)) if verdict.passed else []
    several = len(verdict.judged) > 1
    hooks, folder = [], None
    if not args.no_report:
        keys = list(verdict.judged) or [args.resource or Path(args.template).stem]
        folder = args.report or default_report_folder(args.template, args.build_dir, "+".join(keys))
        hooks = sorted({hook for contract in verdict.contracts for hook in configured_hooks(contract)})
    # The repository's own code: it would run here, not in the sandbox.
    hooks_refused = (
        f"report: the picture hooks of dialsgate.toml ({', '.join(hooks)}) not run: --run-report-hooks runs them"
        if hooks and not args.run_report_hooks
        else None
    )
    first, judged = sandbox_lines(origin), provenance_lines(origin)
    # One screen: the lines printed around the summary are counted first (as the rows they take
    # on this terminal), the summary gets the rest.
    around = [*first, *judged, "gate wall time 0.0 s", "", "GATE FAILED", *steps]
    around += [f"junit: {args.junit_xml}"] if args.junit_xml is not None else []
    around += [f"verdict: {args.verdict_json}"] if args.verdict_json is not None else []
    if folder is not None:
        around += [f"verdict: {folder / VERDICT_FILE}", hooks_refused or ""][: 1 + bool(hooks_refused)]
        around += [f"report: {folder / 'index.html'}"] * max(len(verdict.judged), 0)
    rows_around = sum(screen_rows(line, columns) for line in around)
    for line in first:
        print(line)
    print_verdict(verdict.rows, columns, verbose=args.verbose, max_lines=max(SCREEN_LINES - rows_around, MIN_SUMMARY_LINES))
    for line in judged:
        print(line)
    if args.junit_xml is not None:
        print(f"junit: {write_junit_xml(verdict.rows, args.junit_xml, origin)}")
    if args.verdict_json is not None:
        print(f"verdict: {write_verdict_json(verdict.rows, args.verdict_json, origin)}")
    if folder is not None:
        print(f"verdict: {write_verdict_json(verdict.rows, folder / VERDICT_FILE, origin)}")
        if hooks_refused:
            print(hooks_refused)
        for key, found in verdict.judged.items():
            # One page per resource (its own folder when the template has several), from the
            # facts recorded during the run: the report runs no model code.
            rows = [asdict(row) for row in verdict.rows if row.resource in (key, "")]
            try:
                index = write_report(
                    found.contract,
                    folder / resource_folder_name(key) if several else folder,
                    reference_batch=args.reference_batch,
                    verdict_rows=rows,
                    provenance=origin,
                    picture_hooks=configured_hooks(found.contract) if args.run_report_hooks else [],
                    answers=found.answers,
                    listing=found.listing,
                )
                print(f"report: {index}")
            except Exception as error:  # the report illustrates the verdict; it never changes it
                print(f"report not written: {type(error).__name__}: {error}")
    print(f"gate wall time {time.perf_counter() - start:.1f} s")
    if verdict.passed:
        print("\nGATE PASSED. Next:\n" + "\n".join(f"  {number}. {step}" for number, step in enumerate(steps, 1)))
        return 0
    print("\nGATE FAILED: fix the rows that did not pass; nothing should be packaged.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
