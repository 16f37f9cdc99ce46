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
from dialsgate.gate.provenance import gate_version, provenance
from dialsgate.gate.runner import Row, Verdict
from dialsgate.report.concerns import CONCERNS, concern_of
from dialsgate.settings import reference_batch_beside, settings

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
    line = forgeable_line(rows)
    if line:
        print("\n".join(wrap_reason(line, max(MIN_REASON_WIDTH, columns))))


def forgeable_line(rows: list[Row]) -> str | None:
    """One sentence: how many rows rest on the folder's own code (``Row.forgeable``), per concern."""
    forged = [row for row in rows if row.forgeable]
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


def print_sandbox(origin: dict | None) -> None:
    """The verdict's first lines: where model code ran, and the server layer's network when it
    was the host's."""
    if not origin or "model_code" not in origin:
        return
    code = origin["model_code"]
    if code.get("where") == "host":
        print(
            "MODEL CODE WAS JUDGED OUTSIDE THE SERVING IMAGE (--no-container): on this machine, with its network and "
            "files in reach; this verdict cannot pass the gate"
        )
    else:
        print(
            f"model code ran in a worker container of the image: network none, {code['user']} user, the folder "
            f"and the root filesystem read-only, {code['limits']}"
        )
    network = origin.get("server_network")
    if network == "none":
        print("the server layer's container had no network either: requests reached MLServer through the engine (exec)")
    elif network == "host":
        print(
            "the server layer ran MLServer with the host's network (DIALSGATE_DOCKER_NETWORK=host): bound to "
            "127.0.0.1, but its model code could reach what this machine reaches"
        )
    elif network == "bridge":
        print(
            "the server layer ran MLServer on the engine's bridge (DIALSGATE_DOCKER_NETWORK=bridge), its port published "
            "on 127.0.0.1: its model code could reach what the bridge reaches"
        )


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
        + (", the folder's known failures ignored" if origin.get("known_failures_ignored") else "")
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
    return provenance(
        verdict.contract,
        strict=strict,
        reference_batch=batch,
        with_image="server" in args.layers,
        ignore_known_failures=bool(getattr(args, "ignore_known_failures", False)),
    )
