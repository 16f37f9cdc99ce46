"""Static checks: the server folder's source and the template's Resources, judged without running them.

``check_python_version_compatible``: every ``.py`` under the server folder needs no Python newer
than the serving image's (vermin, per file). ``check_resources_plausible``: the template's
Kubernetes requests and limits are quantities within sane bounds, requests not above limits.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import vermin
from vermin.formats import ParsableFormat

from dialsgate.checks.base import CheckFailed, case, check
from dialsgate.contract.quantity import describe_bytes, describe_cores
from dialsgate.contract.resources import declared_resources
from dialsgate.environment.profiles import UnsupportedImage, profile_for_image
from dialsgate.limits import limit
from dialsgate.plainfiles import NotPlain, read_plain, walk_plain
from dialsgate.pysource import PARSE_LOCK, SourceTooLarge, parse


def target_python(contract) -> tuple[int, int]:
    """The Python (major, minor) the serving image runs the folder with, from its image profile."""

    try:
        return profile_for_image(contract.image).python_minor
    except UnsupportedImage as error:
        raise CheckFailed(str(error)) from None


# --------------------------------------------------------------------------- Python version


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int | None
    needs: str | None  # "3.11"; None: the file could not be judged (construct says why)
    construct: str  # "'tomllib' module"

    def where(self, root: Path) -> str:
        name = self.path.relative_to(root) if self.path.is_relative_to(root) else self.path
        return f"{name}:{self.line}" if self.line else str(name)


def python_files(folder: Path) -> list[Path]:
    """Every plain .py under ``folder`` (what MLServer may import), interpreter caches excluded;
    no link is followed (check_folder_plain_files names them)."""
    return [
        path
        for path in walk_plain(Path(folder)).files
        if path.suffix == ".py" and "__pycache__" not in path.relative_to(folder).parts
    ]


def _postpones_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )


def _annotations(tree: ast.Module) -> list[ast.expr]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return found


def without_postponed_annotations(source: bytes, tree: ast.Module) -> bytes:
    """``source`` with every annotation replaced by ``(None)`` (newlines kept: same line numbers).

    Under ``from __future__ import annotations`` Python stores annotations as strings and never
    evaluates them by itself, so ``-> typing.Self`` needs nothing from 3.10; vermin would still
    flag the member. (Libraries that evaluate hints, e.g. pydantic models, are not judged.)
    """
    lines = source.splitlines(keepends=True)
    spans = sorted(
        ((a.lineno, a.col_offset, a.end_lineno, a.end_col_offset) for a in _annotations(tree) if a.end_lineno is not None),
        reverse=True,
    )
    for start_line, start_col, end_line, end_col in spans:  # from the end: earlier offsets stay valid
        first, last = lines[start_line - 1], lines[end_line - 1]
        replacement = b"(None" + b"\n" * (end_line - start_line) + b")"
        lines[start_line - 1 : end_line] = [first[:start_col] + replacement + last[end_col:]]
    return b"".join(lines)


#: vermin's parsable lines, after the file name: ``:line:column:py2:py3:feature``.
_PARSABLE = re.compile(r":(?P<line>\d*):(?P<column>\d*):(?P<py2>[^:]*):(?P<py3>[^:]*):(?P<feature>.*)")
#: The name vermin is given for the file (its parsable format drops paths holding ':').
_VERMIN_NAME = "module.py"


#: Exceptions a ``try`` catches when its body may need a newer Python (the fallback follows).
GUARD_EXCEPTIONS = {"ImportError", "ModuleNotFoundError", "AttributeError", "NameError", "Exception", "BaseException"}


def _names(node: ast.expr | None) -> set[str]:
    return (
        {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        if node is not None
        else set()
    )


def _lines(statements: list[ast.stmt]) -> set[int]:
    return {line for s in statements for line in range(s.lineno, (s.end_lineno or s.lineno) + 1)}


def guarded_lines(tree: ast.Module) -> set[int]:
    """Lines that only run when the interpreter has what they use (vermin cannot tell).

    * both branches of ``if sys.version_info ...:`` (the test picks the branch this Python has);
    * the body of ``if TYPE_CHECKING:`` (never run);
    * a ``try`` whose handlers catch ImportError, AttributeError, NameError or any exception
      (``try: import tomllib`` / ``except ImportError: import tomli``), or a bare except: its
      body and the handlers (one of the two is the fallback; which one runs here is not judged).
    """
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            names = _names(node.test)
            if "version_info" in names:
                lines |= _lines(node.body) | _lines(node.orelse)
            elif "TYPE_CHECKING" in names:
                lines |= _lines(node.body)
        elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            if any(handler.type is None or _names(handler.type) & GUARD_EXCEPTIONS for handler in node.handlers):
                lines |= _lines(node.body) | _lines([s for handler in node.handlers for s in handler.body])
    return lines


def bound_names(tree: ast.Module) -> set[str]:
    """Names the file defines itself (``from exceptiongroup import ExceptionGroup``, ``class Self``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def vermin_findings(path: Path, target: tuple[int, int]) -> list[Finding]:
    """What in ``path`` needs a Python newer than ``target`` (vermin's library API, one file).

    Settings chosen against false alarms on code ``target`` runs:

    * target ``3.10-`` (the code's minimum must be at most 3.10) and violations only;
    * annotations are taken as evaluated (vermin's ``--eval-annotations``): without
      ``from __future__ import annotations`` 3.10 evaluates them when the function or class is
      defined, so ``def f() -> typing.Self`` fails at import; in files with that import they
      are strings that need nothing, and are blanked before vermin sees them
      (:func:`without_postponed_annotations`);
    * version-guarded code is not judged (:func:`guarded_lines`: vermin does not follow
      ``if sys.version_info``, ``try/except ImportError`` or ``TYPE_CHECKING``); vermin's own
      ``# novermin`` / ``# novm`` comments are honoured too;
    * no backports: every module vermin knows a backport for exists in 3.10 already;
    * vermin's default features (its ``X | Y`` union detection stays off: 3.10 has it).

    vermin parses with this interpreter (3.11 in the fast layer): a file this interpreter cannot
    parse (3.12 syntax, or no Python at all) is reported with vermin's parse message.
    """

    try:
        source = read_plain(path, int(limit("source_file_bytes")))
    except NotPlain as error:
        return [Finding(path, None, None, f"not read: {error}")]
    try:
        tree = parse(source, filename=str(path))
    except SourceTooLarge as error:  # nor by vermin, which would parse it by itself
        return [Finding(path, None, None, f"not judged: {error}")]
    except (SyntaxError, ValueError):
        tree = None
    if tree is not None and _postpones_annotations(tree):
        source = without_postponed_annotations(source, tree)
    config = vermin.Config()
    config.add_target(target, exact=False)
    config.set_only_show_violations(True)
    config.set_verbose(3)
    config.set_show_tips(False)
    config.set_processes(1)
    config.set_eval_annotations(True)  # postponed annotations were removed above
    config.set_format(ParsableFormat())
    printed = io.StringIO()
    # vermin parses by itself: under the gate's one parse lock (dialsgate.pysource).
    with PARSE_LOCK, contextlib.redirect_stdout(printed):  # vermin prints parse errors instead of returning them
        node, _, novermin, error = vermin.Parser(source, _VERMIN_NAME).detect(config)
    if node is None:
        text = printed.getvalue() or (error or "") or f"{_VERMIN_NAME}:::!2:?:error: this interpreter cannot parse the file"
    else:
        visitor = vermin.SourceVisitor(config=config, path=_VERMIN_NAME, source=source)
        visitor.set_no_lines(set(novermin) | guarded_lines(node))
        visitor.tour(node)
        visitor.minimum_versions()
        text = visitor.output_text()
    # A builtin the file binds itself (``from exceptiongroup import ExceptionGroup`` on 3.10) is not
    # the builtin: vermin does not see bindings made in guarded branches.
    own = bound_names(node) if node is not None else set()
    findings = []
    for line in text.splitlines():
        match = _PARSABLE.fullmatch(line.removeprefix(_VERMIN_NAME))
        if not line.startswith(_VERMIN_NAME) or match is None or not match["feature"]:  # the summary line has no feature
            continue
        construct, needs = match["feature"].removeprefix("info: ").strip(), match["py3"]
        builtin = re.fullmatch(r"'(\w+)' member", construct)
        if builtin and builtin[1] in own:
            continue
        if construct.startswith("error: "):
            construct = "syntax error: " + construct.removeprefix("error: ")
            needs = f"a Python that parses it (the gate runs {sys.version_info.major}.{sys.version_info.minor})"
        elif needs.startswith("!"):
            needs = f"a Python before {needs[1:]} (it is gone from Python {needs[1:]})"
        findings.append(Finding(path, int(match["line"]) if match["line"] else None, needs, construct))
    return findings


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_python_version_compatible(subject) -> None:
    """The serving image's Python runs every module of the server folder (no 3.11+ construct on 3.10)."""
    subject.require_plain_folder()
    contract = subject.contract
    target = target_python(contract)
    target_text = f"{target[0]}.{target[1]}"
    every = [finding for path in python_files(contract.code_dir) for finding in vermin_findings(path, target)]
    unjudged = [f"{f.where(contract.code_dir)}: {f.construct}" for f in every if f.needs is None]
    findings = [f for f in every if f.needs is not None]
    said = []
    if findings:
        lines = [
            f"{f.where(contract.code_dir)}: {f.construct} needs {f.needs}"
            + ("" if f.needs.startswith("a Python") else f", but the image has Python {target_text}")
            for f in findings
        ]
        said.append(
            f"{len(findings)} construct(s) in {contract.code_dir} need a Python newer than the image's {target_text} "
            f"({contract.image}): " + "; ".join(lines)
        )
    if unjudged:
        said.append(f"{len(unjudged)} file(s) the gate could not judge for Python {target_text}: " + "; ".join(unjudged))
    if said:
        raise CheckFailed(" | ".join(said))


# --------------------------------------------------------------------------- Resources


@dataclass(frozen=True)
class Bounds:
    low: Decimal
    high: Decimal
    why: str


#: Plausible amounts for one DIALS MLServer model pod (requests and limits alike).
BOUNDS = {
    # MLServer 1.5.0 alone (Python, uvicorn, the model runtime, before any model is loaded)
    # resides in about 150-200 MB; below 128 MiB the pod is OOM-killed at start. Above 64 GiB
    # no DIALS node schedules it: the number is a typo (Gi for Mi, an extra digit).
    "memory": Bounds(
        Decimal(128 * 1024**2), Decimal(64 * 1024**3), "MLServer alone needs more than 128 MiB; more than 64 GiB fits no node"
    ),
    # A twentieth of a core is already a throttled MLServer (start-up takes minutes);
    # above 64 cores is a typo (m forgotten: "500" for "500m").
    "cpu": Bounds(Decimal("0.05"), Decimal(64), "below 0.05 cores MLServer crawls; more than 64 cores fits no node"),
}
DESCRIBE = {"memory": describe_bytes, "cpu": describe_cores}


@check(kind="failure", concern="template", runs_model_code=False)
def check_resources_plausible(subject) -> None:
    """Requests/Limits are Kubernetes quantities within BOUNDS, and no request exceeds its limit."""
    contract = subject.contract
    declared = declared_resources(contract)
    problems = list(declared.shape_problems)
    for amount in declared.amounts:
        path = amount.path(contract)
        if amount.value is None:
            problems.append(f"{path} = {amount.raw!r}: {amount.error}")
            continue
        bounds = BOUNDS[amount.resource]
        describe = DESCRIBE[amount.resource]
        if not bounds.low <= amount.value <= bounds.high:
            side = "below" if amount.value < bounds.low else "above"
            limit = bounds.low if side == "below" else bounds.high
            problems.append(
                f"{path} = {amount.raw!r} is {describe(amount.value)}, {side} the plausible {describe(limit)} ({bounds.why})"
            )
    for resource in ("cpu", "memory"):
        request, limit = declared.get("Requests", resource), declared.get("Limits", resource)
        if request is None or limit is None or request.value is None or limit.value is None:
            continue
        if request.value > limit.value:
            describe = DESCRIBE[resource]
            problems.append(
                f"{request.path(contract)} = {request.raw!r} ({describe(request.value)}) is above "
                f"{limit.path(contract)} = {limit.raw!r} ({describe(limit.value)}): Kubernetes refuses a request above its limit"
            )
    if problems:
        raise CheckFailed(f"implausible Resources in {contract.template_path}: " + "; ".join(problems))


def cases(contract):
    return [case(check_python_version_compatible), case(check_resources_plausible)]
