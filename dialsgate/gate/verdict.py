"""The verdict as a person and a machine read it: the one-screen summary (the full table with
``-v``), ``verdict.json`` with its provenance, and the next steps after a pass."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import textwrap
from dataclasses import asdict
from pathlib import Path

from dialsgate.checks import ADVICE
from dialsgate.checks.findings import Outcome
from dialsgate.checks.subject import ENGINE_ROOT
from dialsgate.gate.provenance import gate_version, provenance
from dialsgate.gate.runner import Row, Verdict
from dialsgate.inert import inert
from dialsgate.report.concerns import CONCERNS, concern_of
from dialsgate.settings import reference_batch_beside, settings

#: The reason column is never narrower than this (a narrow terminal wraps more, cuts nothing).
MIN_REASON_WIDTH = 40
#: The summary is laid out for at least this many columns (a narrower terminal wraps its lines).
MIN_COLUMNS = 60


def wrap_reason(reason: str, width: int) -> list[str]:
    """The whole reason in lines of at most ``width`` characters (its own line breaks kept)."""
    lines = []
    for paragraph in reason.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width, break_long_words=True, break_on_hyphens=False) or [""]
    return lines or [""]


def print_table(rows: list[Row], columns: int | None = None) -> None:
    """The full table (``-v``): one row per check; long reasons wrap onto indented lines, never cut."""
    if len(resources_of(rows)) > 1:  # several resources: each row names its own
        rows = [Row(row.layer, f"{row.resource}: {row.check}" if row.resource else row.check, row.result, row.reason)
                for row in rows]  # fmt: skip
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


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {result}" for result, count in sorted(counts.items()))


#: The terminal verdict of ``dialsgate check`` fits one screen: at most SCREEN_LINES lines from
#: its first (where model code ran) to its last (GATE PASSED or FAILED). The command's own lines
#: (sandbox, provenance, the files written, the outcome) are counted first; the summary
#: (``print_verdict``) gets the rest, never fewer than MIN_SUMMARY_LINES.
SCREEN_LINES = 40
MIN_SUMMARY_LINES = 20

#: "... (see check_handler_loads)": the root row a "not run" row names (checks.CheckNotRun).
ROOT_OF_NOT_RUN = re.compile(r"\(see ([^)]+)\)\s*$")
TRACEBACK_HEADER = "Traceback (most recent call last):"
#: The transport a row ran over: check_input_dims[Occupancy]@http.
TRANSPORT = re.compile(r"@([A-Za-z0-9_.-]+)$")
#: ``dialsgate.transports.http.AnswerTooLarge: ...`` at the start of a reason: the class is enough.
EXCEPTION_PATH = re.compile(r"^((?:setup|teardown|call): )?(?:[a-z_][a-z0-9_]*\.)+([A-Z]\w*: )")
#: How a check writes a remedy into its reason: "(harden it: HTTP 400 naming 'x')", or a clause
#: after the first that starts with one of these verbs ("...: declare Dims [-1, 1] for ...",
#: "(remove them from CodeUri)", "...; raise the limit or lower the model's memory").
HARDEN = re.compile(r"\((harden it: [^()]*(?:\([^()]*\)[^()]*)*)\)")
FIX_VERBS = (
    "add", "answer", "build", "change", "check", "declare", "define", "delete", "give", "install", "keep",
    "lower", "move", "pin", "raise", "rebuild", "remove", "rename", "replace", "retrain", "save", "write",
)  # fmt: skip
FIX_CLAUSE = re.compile(r"(?:[:;]\s+|\(|\.\s+)(?P<fix>(?:" + "|".join(FIX_VERBS) + r")\s.*)$")
#: The sentence on forgeable rows takes at most this many lines of the summary.
FORGEABLE_LINES = 3
#: The longest check name a summary line shows (an id built from a folder's input name may be long).
NAME_CHARS = 80


def screen_rows(line: str, columns: int) -> int:
    """The rows ``line`` takes on a terminal ``columns`` wide (a longer line wraps)."""
    return max(1, -(-len(line) // columns))


def check_name(check: str) -> str:
    """The check a row belongs to: its id without parameters and transport
    (``check_input_dims[Occupancy]@http`` -> ``check_input_dims``)."""
    return TRANSPORT.sub("", check).split("[", 1)[0] or check


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters (``...`` where it was cut)."""
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def reason_line(reason: str) -> str:
    """A reason in one line, escaped (``inert``): its first line (with the next one when it ends
    with a colon), a traceback in it replaced by the traceback's exception line; pytest's
    ``AssertionError: `` and an exception's module path left out. The whole reason stays in
    ``-v``, the report and verdict.json."""
    lines = [line for line in str(reason).splitlines() if line.strip()]
    if not lines:
        return ""
    first, rest = lines[0].strip(), lines[1:]
    if first.endswith(":") and rest:  # a heading whose subject is on the next line: both, in one
        first, rest = f"{first} {rest[0].strip()}", rest[1:]
    if TRACEBACK_HEADER in first:  # the traceback's last unindented line is its exception
        ending = [line.strip() for line in rest if not line[:1].isspace()]
        first = first[: first.index(TRACEBACK_HEADER)] + (ending[-1] if ending else TRACEBACK_HEADER)
    first = EXCEPTION_PATH.sub(r"\1\2", first)
    first = re.sub(r"^((?:setup|teardown|call): )?AssertionError: ", r"\1", first)
    return inert(" ".join(first.split()))


def fix_of(reason: str) -> str | None:
    """The remedy a reason's first line states (see ``FIX_CLAUSE``), or None."""
    line = reason_line(reason)
    harden = HARDEN.search(line)
    if harden:
        return harden.group(1)
    found = FIX_CLAUSE.search(line)
    if found is None or found.start() == 0:
        return None
    fix = found.group("fix").strip()
    while fix.endswith(")") and fix.count(")") > fix.count("("):  # the clause was inside brackets
        fix = fix[:-1].rstrip()
    return fix or None


def _where(rows: list[Row]) -> str:
    """``fast, server @http @tritonclient``: the layers of a check's rows, each with its transports."""
    places: dict[str, dict[str, None]] = {}
    for row in rows:
        transport = TRANSPORT.search(row.check)
        places.setdefault(inert(row.layer), {})
        if transport:
            places[inert(row.layer)][f"@{inert(transport.group(1))}"] = None
    return ", ".join(" ".join([layer, *transports]) for layer, transports in places.items())


def _rows_of(rows: int, checks: int) -> str:
    return f"{rows} row{'s' if rows != 1 else ''} of {checks} check{'s' if checks != 1 else ''}"


def _named(name: str, members: list[Row]) -> str:
    """A check's name as the summary shows it, with its count of rows when more than one."""
    return cut(inert(name), NAME_CHARS) + (f" ({len(members)})" if len(members) > 1 else "")


def _group(rows: list[Row], by_resource: bool = False) -> dict[str, list[Row]]:
    """Rows by check name (``resource: check`` when the verdict covers several resources)."""
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        name = check_name(row.check)
        resource = getattr(row, "resource", "")
        grouped.setdefault(f"{resource}: {name}" if by_resource and resource else name, []).append(row)
    return grouped


def resources_of(rows: list[Row]) -> list[str]:
    """The resources the rows are about, in order of first appearance."""
    return list(dict.fromkeys(getattr(row, "resource", "") for row in rows if getattr(row, "resource", "")))


def root_of(row: Row) -> str | None:
    """The row a ``not run`` row waited on: its recorded root (an older verdict's: from its reason)."""
    if row.result != "not run":
        return None
    root = getattr(row, "root", None)
    if root:
        return root
    found = ROOT_OF_NOT_RUN.search(row.reason)
    return found.group(1) if found else None


def _group_line(name: str, members: list[Row], columns: int) -> str:
    count = f"{len(members)} rows; " if len(members) > 1 else ""
    return cut(f"  {cut(inert(name), NAME_CHARS)} ({count}{_where(members)}): {reason_line(members[0].reason)}", columns)


def _packed(names: list[str], columns: int, room: int | None = None, lead: str = "  also:") -> list[str]:
    """``names`` comma-separated on as few lines as fit ``columns``, the first starting with
    ``lead``; with ``room``, on at most that many, the last one ending ``... and N more`` when
    they do not all fit."""
    more_width = len(" ... and 99999 more (-v, the report)")
    lines: list[str] = []
    text, held, index = lead, 0, 0
    while index < len(names):
        last = room is not None and len(lines) >= room - 1
        width = columns - more_width if last else columns
        candidate = f"{text}, {names[index]}" if held else f"{text} {names[index]}"
        if len(candidate) <= width or (not held and not last):
            text, held, index = candidate, held + 1, index + 1
        elif last:
            break
        else:
            lines.append(text + ",")
            text, held = " ", 0
    if index < len(names):
        text += f" ... and {len(names) - index} more (-v, the report)"
    return [*lines, cut(text, columns)]


def _fitted(lines: list[str], names: list[str], room: int, columns: int) -> tuple[int, list[str]]:
    """Within ``room`` lines: how many groups keep their own line, and the lines (the groups
    after them named on packed lines)."""
    if len(lines) <= room:
        return len(lines), lines
    room = max(room, 1)
    for kept in range(min(len(lines), room) - 1, 0, -1):
        packed = _packed(names[kept:], columns)
        if kept + len(packed) <= room:
            return kept, lines[:kept] + packed
    return 0, _packed(names, columns, room, lead=" ")


def summary_lines(rows: list[Row], columns: int, max_lines: int) -> list[str]:
    """The verdict in at most ``max_lines`` lines of at most ``columns`` characters: a line per
    concern with its counts; each failing check once, with its first row's reason in one line
    and that reason's fix on the next; the rows not run counted under their root; a line per
    advice check with its count of rows; the counts of every result; the rows the folder's
    code could forge. Too many checks for the screen: the last ones are named on shared lines."""
    by_concern: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = by_concern.setdefault(concern_of(row.layer, row.check), {})
        counts[row.result] = counts.get(row.result, 0) + 1
    head = ["", cut("verdict by concern (every row, full reasons: -v, the report, verdict.json)", columns)]
    for concern in [*CONCERNS, *sorted(set(by_concern) - set(CONCERNS))]:
        if concern in by_concern:
            head.append(cut(f"  {inert(concern):<11} {_counts_text(by_concern[concern])}", columns))
    resources = resources_of(rows)
    several = len(resources) > 1
    if several:  # one verdict over every resource of the template: each resource's counts
        for resource in resources:
            counts: dict[str, int] = {}
            for row in rows:
                if getattr(row, "resource", "") == resource:
                    counts[row.result] = counts.get(row.result, 0) + 1
            head.append(cut(f"  resource {inert(resource)}: {_counts_text(counts)}", columns))
    results = {row.result: sum(1 for other in rows if other.result == row.result) for row in rows}
    tail = [cut(_counts_text(results), columns)]
    forged = forgeable_line(rows)
    if forged:
        wrapped = wrap_reason(forged, columns)
        if len(wrapped) > FORGEABLE_LINES:
            wrapped = wrapped[: FORGEABLE_LINES - 1] + [cut(" ".join(wrapped[FORGEABLE_LINES - 1 :]), columns)]
        tail += wrapped

    behind: dict[str, int] = {}
    failing = []
    for row in rows:
        root = root_of(row)
        if root:
            behind[root] = behind.get(root, 0) + 1
        elif not row.passed:
            failing.append(row)
    failures = _group(failing, several)
    advice = _group([row for row in rows if row.result == ADVICE], several)
    room = max_lines - len(head) - len(tail) - bool(failures) - bool(behind) - bool(advice)

    # Failures first (each named), leaving at least a line for the advice checks.
    lines = [_group_line(name, members, columns) for name, members in failures.items()]
    names = [_named(name, members) for name, members in failures.items()]
    whole, failure_lines = _fitted(lines, names, room - bool(advice), columns)
    room -= len(failure_lines)
    advice_lines = []
    if advice:
        lines = [_group_line(name, members, columns) for name, members in advice.items()]
        names = [_named(name, members) for name, members in advice.items()]
        advice_lines = _fitted(lines, names, room, columns)[1]
        room -= len(advice_lines)

    body: list[str] = []
    if failures:
        body.append(cut(f"failures: {_rows_of(len(failing), len(failures))}, each fails the gate", columns))
        for position, line in enumerate(failure_lines):
            body.append(line)
            fix = fix_of(list(failures.values())[position][0].reason) if position < whole else None
            if fix and room > 0 and not line.endswith(fix):  # a fix the reason's line shows whole is not repeated
                body.append(cut(f"      fix: {fix}", columns))
                room -= 1
    failed_roots = {root: count for root, count in behind.items() if root != ENGINE_ROOT}
    if failed_roots:
        named = "; ".join(f"{count} behind {cut(inert(root), NAME_CHARS)}" for root, count in failed_roots.items())
        body.append(cut(f"not run behind a failed row: {named}", columns))
    if ENGINE_ROOT in behind:  # no row failed: the engine did not answer (the verdict's first line says why)
        body.append(cut(f"not run, no container engine answering: {behind[ENGINE_ROOT]} rows that run model code", columns))
    if advice:
        body.append(
            cut(
                f"advice: {_rows_of(sum(len(members) for members in advice.values()), len(advice))}, hardening "
                "against requests DIALS never sends; fails the gate only under --strict",
                columns,
            )
        )
        body += advice_lines
    return head + body + tail


def print_verdict(rows: list[Row], columns: int | None = None, verbose: bool = False, max_lines: int = SCREEN_LINES) -> None:
    """The verdict on one screen (``summary_lines``, at most ``max_lines`` lines); ``verbose``:
    the full table first, every row with its whole reason."""
    columns = max(columns or shutil.get_terminal_size(fallback=(160, 24)).columns, MIN_COLUMNS)
    if verbose:
        print_table(rows, columns)
    print("\n".join(summary_lines(rows, columns, max_lines)))


def forgeable_line(rows: list[Row]) -> str | None:
    """One sentence: how many rows rest on the folder's own code (``Row.forgeable``), per concern;
    a row not run rests on nothing the folder did."""
    forged = [row for row in rows if row.forgeable and row.result != Outcome.NOT_RUN]
    if not forged:
        return None
    per_concern: dict[str, int] = {}
    for row in forged:
        concern = concern_of(row.layer, row.check)
        per_concern[concern] = per_concern.get(concern, 0) + 1
    counts = ", ".join(f"{concern} {count}" for concern, count in per_concern.items())
    return (
        f"{len(forged)} rows come from the folder's own code running in the sandbox and could be forged by it "
        f'(it can tell it is being tested): {counts}; "forgeable": true in verdict.json, marked in the report'
    )


def sandbox_lines(origin: dict | None, rows: list[Row] = ()) -> list[str]:
    """The verdict's first lines: where model code ran, and the server layer's network when it
    was the host's; that it did not run, when no container engine answered (``rows``)."""
    if not origin or "model_code" not in origin:
        return []
    code = origin["model_code"]
    absent = next((row for row in rows if row.root == ENGINE_ROOT), None)
    if absent is not None:  # its reason: the engine's words and what to do
        return [f"model code did not run: {reason_line(absent.reason).removesuffix(f' (see {ENGINE_ROOT})')}"]
    if code.get("where") == "host":
        lines = [
            "MODEL CODE WAS JUDGED OUTSIDE THE SERVING IMAGE (--no-container): on this machine, with its network and "
            "files in reach; this verdict cannot pass the gate"
        ]
    else:
        lines = [
            f"model code ran in a worker container of the image: network none, {code['user']} user, the folder "
            f"and the root filesystem read-only, {code['limits']}"
        ]
    network = origin.get("server_network")
    if network == "none":
        lines.append("the server layer's container had no network either: requests reached MLServer through the engine (exec)")
    elif network == "host":
        lines.append(
            "the server layer ran MLServer with the host's network (DIALSGATE_DOCKER_NETWORK=host): bound to "
            "127.0.0.1, but its model code could reach what this machine reaches"
        )
    elif network == "bridge":
        lines.append(
            "the server layer ran MLServer on the engine's bridge (DIALSGATE_DOCKER_NETWORK=bridge), its port published "
            "on 127.0.0.1: its model code could reach what the bridge reaches"
        )
    return lines


def print_sandbox(origin: dict | None) -> None:
    for line in sandbox_lines(origin):
        print(line)


def provenance_lines(origin: dict | None) -> list[str]:
    """Two lines: what was judged (folder and model file hashes), by what (gate, image), how (strict)."""
    if not origin or "folder_sha256" not in origin:
        return []
    image = origin.get("image", {})
    return [
        f"judged: {origin['folder']} (sha256 {origin['folder_sha256'][:12]}), model file sha256 "
        f"{(origin['model_file_sha256'] or 'missing')[:12]}, batch {origin['reference_batch'] or 'sample data'}",
        f"by: dialsgate {origin['dialsgate']}, image {image.get('name')} ({image.get('kind')}"
        f"{', pins ' + image['pins_sha256'][:12] if image.get('pins_sha256') else ''}), strict {origin['strict']}"
        + (", the folder's known failures ignored" if origin.get("known_failures_ignored") else ""),
    ]


def print_provenance(origin: dict | None) -> None:
    for line in provenance_lines(origin):
        print(line)


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


def default_report_folder(template: Path, build_dir: Path | None, resource_key: str) -> Path:
    """report/<ResourceKey>-<8 hex>: the hash of the resolved template path and build folder.

    Two models with the same ResourceKey (two checkouts, a copy, the CodeUri and the build
    folder of one template) never share a folder, and the same inputs always reuse theirs.
    """
    identity = f"{Path(template).resolve()}\0{Path(build_dir).resolve() if build_dir is not None else ''}\0{resource_key}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    safe_key = re.sub(r"[^A-Za-z0-9_.-]", "_", resource_key) or "model"
    return Path.cwd() / "report" / f"{safe_key}-{digest}"


def resource_folder_name(resource_key: str) -> str:
    """The report subfolder of one resource (a template with several): the key's safe letters and
    a hash of it, so a hostile key (``../x``, a slash, a control character) names no other folder."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", resource_key)[:60] or "resource"
    return f"{safe}-{hashlib.sha256(resource_key.encode()).hexdigest()[:6]}" if safe != resource_key else safe


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
    return provenance(
        verdict.contract,
        strict=strict,
        reference_batch=batch,
        with_image="server" in args.layers,
        ignore_known_failures=bool(getattr(args, "ignore_known_failures", False)),
    )
