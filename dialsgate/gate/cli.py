"""The ``dialsgate`` command: ``dialsgate check TEMPLATE`` (the pre-deploy gate: every layer, one
verdict, the report) and ``dialsgate build -f TEMPLATE`` (dismcli's build folder, offline).

    dialsgate check path/to/template.yaml [--build-dir B | --package ZIP] [--resource R] [--reference-batch F]
                    [--layers fast,parity,server] [--report DIR] [--strict] [--ignore-known-failures]
                    [--run-report-hooks] [-v] [--junit-xml FILE]

Exit status 0 only on a pass; 128 + the signal's number when stopped by SIGINT (Ctrl-C), SIGTERM
(a CI job cancelled or timed out) or SIGHUP (its terminal closed), after removing the containers
the run started. Serving environments and stand-in images are cached under
~/.cache/dialsgate (DIALSGATE_CACHE_DIR, XDG_CACHE_HOME), shared between projects.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import stat
import sys
from pathlib import Path
from typing import NoReturn

from dialsgate.gate.defaults import ARGUMENT_ERROR, DEFAULT_DIALS_URL, LAYERS
from dialsgate.gate.terminal import inert_terminal
from dialsgate.plainfiles import NotPlain, open_plain
from dialsgate.stopping import Stopped, stop_on


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
        # Late: the offline build's modules only for that command.
        from dialsgate.contract.build import main as build_main

        return build_main(argv[1:])
    return check(args, extra)


def entry(argv: list[str] | None = None) -> NoReturn:
    """The ``dialsgate`` command and ``python -m dialsgate``: ``main``, then the process ends at
    once. What the run wrote is closed and flushed by then; the interpreter's own teardown of the
    modules a run loads (numpy, scipy, MLServer's, the engine's clients) took 0.2 s more of every
    run, for nothing."""
    stop_on((signal.SIGTERM, signal.SIGHUP))
    try:
        code = main(argv)
    except KeyboardInterrupt as stopped:  # Ctrl-C, or Stopped by SIGTERM or SIGHUP
        number = stopped.args[0] if isinstance(stopped, Stopped) else signal.SIGINT
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"\ndialsgate: stopped by {signal.Signals(number).name}\n")
        code = 128 + number
    with contextlib.suppress(OSError, ValueError):  # a reader gone (``| head``): nothing more to say
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


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


def output_argument_problem(args) -> str | None:
    """Why a file the run would write at its end cannot be written (an argument error before any
    work), or None: the report folder (``--report``, else ``./report``), ``--junit-xml`` and
    ``--verdict-json``, each judged by the nearest folder of its path that exists. A gate run in a
    folder this user cannot write (a shared checkout, a folder mounted read-only to judge it) did
    all its work and then stopped on a traceback."""
    wanted = [] if args.no_report else [("report folder", args.report or Path.cwd() / "report", "--report DIR or --no-report")]
    wanted += [
        (option, path, f"another {option}")
        for option, path in (("--junit-xml", args.junit_xml), ("--verdict-json", args.verdict_json))
        if path
    ]
    for what, path, instead in wanted:
        existing = Path(path).absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        folder = existing if existing.is_dir() else existing.parent
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"the {what} {path} cannot be written ({folder} is not writable for this user): pass {instead}"
    return None


def check(args, extra: list[str]) -> int:
    """Run the gate as ``args`` (check_parser's) say; 0 only on a pass, ``ARGUMENT_ERROR`` (with
    nothing written) when the template cannot be read or what it would write cannot be written.
    Everything it prints is made inert (``gate.terminal``): a folder's strings reach the terminal
    as visible escapes."""
    with inert_terminal():
        problem = template_argument_problem(Path(args.template)) or output_argument_problem(args)
        if problem:
            print(f"dialsgate check: error: {problem}", file=sys.stderr)
            return ARGUMENT_ERROR
        # Late: the gate's machinery (numpy, hypothesis, dism-core: 0.6 s of each start) only once
        # the arguments are read, so an argument error answers at once.
        from dialsgate.gate import command

        return command.run_check(args, extra)


if __name__ == "__main__":
    sys.exit(main())
