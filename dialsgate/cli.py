"""The ``dialsgate`` command: the pre-deploy gate on any DIALS MLServer model folder.

    dialsgate check path/to/template.yaml [--build-dir B] [--resource R] [--reference-batch F]
                    [--layers fast,parity,server] [--report DIR] [--runner here|tox]

Runs every layer (in this interpreter by default), prints the verdict, writes the report and
verdict.json, exits 0 only on a pass. Serving environments and stand-in images are cached under
~/.cache/dialsgate (DIALSGATE_CACHE_DIR, XDG_CACHE_HOME), shared between projects.
"""

from __future__ import annotations

import argparse
import sys

from . import gate


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="dialsgate", description="Conformance gate for DIALS MLServer model folders.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="run every layer on a model folder and print the verdict", add_help=False)
    check.add_argument("template", nargs="?", help="the DISM template (default ./template.yaml)")
    known, rest = parser.parse_known_args(argv)
    if known.command == "check":
        gate_argv = ([] if known.template is None else ["--template", known.template]) + rest
        if not any(arg == "--runner" or arg.startswith("--runner=") for arg in gate_argv):
            gate_argv += ["--runner", "here"]
        return gate.main(gate_argv)
    parser.error(f"unknown command {known.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
