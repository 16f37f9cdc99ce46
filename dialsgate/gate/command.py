"""What ``dialsgate check`` does once its arguments are read: run the gate, print the verdict on
one screen, write verdict.json, the JUnit file and the report (``cli`` parses the command line
and imports this only then, so an argument error answers before the gate's machinery loads)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from dialsgate.checks import explore
from dialsgate.environment.runtime import NO_CONTAINER_ENV
from dialsgate.gate.admission import admitted_package, package_steps, refused_verdict, with_package_facts
from dialsgate.gate.defaults import ARGUMENT_ERROR
from dialsgate.gate.junit import write_junit_xml
from dialsgate.gate.runner import run_gate
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
from dialsgate.report import write_report
from dialsgate.report.hooks import configured_hooks


def run_check(args, extra: list[str]) -> int:
    """Judge the template ``args`` name (it can be read: ``cli.check`` made sure), print the verdict
    on one screen, write verdict.json, JUnit and the report; 0 only on a pass."""
    with admitted_package(args):  # --package: args name the unpacked zip (or why it was refused)
        return _judge_and_print(args, extra)


def _judge_and_print(args, extra: list[str]) -> int:
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
    first, judged = sandbox_lines(origin, verdict.rows), provenance_lines(origin)
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
