"""The terminal verdict of ``dialsgate check`` fits one screen (at most 40 lines) for any folder:
each failing check once with its reason in one line (and its fix), advice one line per check with
its count, rows not run counted under their root; tracebacks, assertion diffs and whole reasons
stay in ``-v``, the report and verdict.json."""

from __future__ import annotations

import re

import pytest

from dialsgate.checks.subject import ENGINE_ROOT
from dialsgate.gate import cli, command
from dialsgate.gate.runner import Row, Verdict
from dialsgate.gate.verdict import check_name, fix_of, print_verdict, reason_line, sandbox_lines

SCREEN = 40

#: A reason whose first line is a worker's traceback header, 40 lines long (a handler that crashed on import).
TRACEBACK = "\n".join(
    ["Traceback (most recent call last):"]
    + [f'  File "/srv/model/pkg/module_{n}.py", line {n}, in step_{n}\n    value = step_{n + 1}(value)' for n in range(19)]
    + ["ModuleNotFoundError: No module named 'uproot'"]
)
#: pytest's rewritten assertion, as a plain ``assert`` in a test leaves it.
ASSERTION_DIFF = (
    "AssertionError: assert {'Flag': ('BO...P32', [1, 1])} == {'Flag': ('BO...('FP32', [1])}\n\n"
    "  Differing items:\n  {'Flag': ('BOOL', [1, 1])} != {'Flag': ('BOOL', [1])}\n"
    "  {'Loss': ('FP32', [1, 1])} != {'Loss': ('FP32', [1])}\n  Use -v to get more diff"
)
SIGNATURE_FIX = "declare Dims [-1, 1] for 'Flag' in the OutputSignature, or answer shape [4] (a ResponseOutput with shape [N])"
INPUTS = [f"OccupancyBPix{n}" for n in range(1, 5)] + ["run_number", "ls_number"]
TRANSPORTS = ["", "@http", "@tritonclient"]


def worst_case_rows() -> list[Row]:
    """Every kind of defect the corpus holds, at once, with 60 advice rows."""
    rows = [Row("fast", f"check_template_field[{n}]", "passed") for n in range(12)]
    failures = [
        ("fast", "check_template_schema", "template.yaml does not validate with dism-core: 1 validation error\n" + "x\n" * 8),
        ("fast", "check_handler_class_defined", "Handler app.\x1b[2J\x1b[32mGATE PASSED\x1b[0m is not a Python class name"),
        ("fast", "check_handler_loads", f"server folder alone (/tmp/x) failed: ModuleNotFoundError\n{TRACEBACK}"),
        ("fast", "check_model_file_loads", TRACEBACK),
        ("fast", "check_pickle_globals_safe", "model.joblib calls os.system (a global no pickle of a model needs)"),
        ("fast", "check_folder_plain_files", "2 path(s) are not plain files: model.joblib is a symbolic link. Nothing "
         "behind them was read: replace each link with the file itself (or remove it)"),
        ("fast", "check_python_version", "3 construct(s) need a Python newer than the image's 3.10: match (line 4)"),
        ("fast", "check_package_contents", "dismcli package would ship these from mlserver-model: ['.env'] (remove them "
         "from CodeUri)"),
        ("parity", "check_image_versions", "model.joblib was not written with the image's package versions: sklearn 1.5"),
        ("server", "test_server_inference::test_single_lumisection", ASSERTION_DIFF),
        ("server", "test_server_resources::test_peak_memory_within_declared_limit", "the container's peak memory 812 MiB "
         "exceeds Limits.memory = '250m': Kubernetes would OOM-kill the pod; raise the limit or lower the model's memory"),
        ("server", "test_server_load::test_concurrent_clients_get_the_inprocess_answers", "200 of 200 requests failed\n" * 30),
        ("server", "(layer)", "pytest did not finish (exit 3); see its output above"),
        ("server", "(collection) dialsgate/pytest_plugin/layers/test_server_health.py", "ImportError while importing"),
    ]  # fmt: skip
    rows += [Row(layer, check, "failed" if layer != "server" or "(" not in check else "error", reason)
             for layer, check, reason in failures]  # fmt: skip
    rows += [
        Row("fast" if not transport else "server", f"check_output_matches_signature[{name}]{transport}", "failed",
            f"output {name!r} has shape [4, 1], the template's Dims [-1] mean [4]; MLServer's NumpyCodec adds that axis: "
            + SIGNATURE_FIX.replace("'Flag'", repr(name)))
        for name in ("Flag", "Loss") for transport in TRANSPORTS
    ]  # fmt: skip
    rows += [
        Row("fast", f"check_input_dims[{name}]", "not run", "the handler did not load (see check_handler_loads)")
        for name in INPUTS
    ]
    rows += [Row("server", "test_server_health::test_server_is_live", "not run", "not served (see check_handler_loads)")]
    advice_checks = ["check_input_required", "check_input_dims_wider_refused", "check_input_datatype_bytes_refused",
                     "check_bad_request_refused", "check_empty_batch_answered", "check_non_finite_counts_refused"]  # fmt: skip
    advice = [
        Row("fast" if not transport else "server", f"{check}[{name}]{transport}", "advice",
            f"input {name!r}: HTTP 500 (harden it: raise mlserver.errors.InferenceError, HTTP 400); DIALS never sends "
            f"this (outside the template's contract): {TRACEBACK}")
        for check in advice_checks for name in INPUTS[:5] for transport in TRANSPORTS[:2]
    ]  # fmt: skip
    assert len(advice) == 60
    rows += advice
    return rows


def failing_checks(rows: list[Row]) -> list[str]:
    """Every check with a row that fails the gate and is not a row not run behind a root."""
    return list(dict.fromkeys(check_name(row.check) for row in rows if not row.passed and "(see " not in row.reason))


def named(name: str, text: str) -> int:
    """How often ``name`` appears in ``text`` as a whole name (not as the start of a longer one)."""
    return len(re.findall(rf"(?<![\w:.]){re.escape(name)}(?![\w])", text))


def gate_output(monkeypatch, capsys, tmp_path, rows: list[Row], columns: int, *options: str) -> str:
    """What ``dialsgate check`` prints for ``rows`` (the run fabricated), from its verdict's first line."""
    template = tmp_path / "template.yaml"
    template.write_text("Resources: {}\n")
    origin = {
        "model_code": {"where": "worker container", "user": "the image's (uid 1000)", "limits": "memory 4 GiB"},
        "server_network": "none",
        "folder": str(tmp_path),
        "folder_sha256": "ab" * 32,
        "model_file_sha256": "cd" * 32,
        "reference_batch": None,
        "dialsgate": "0.2.0",
        "image": {"name": "mlserver:1.5.0", "kind": "stand-in", "pins_sha256": "ef" * 32},
        "strict": False,
    }
    monkeypatch.setattr(command, "run_gate", lambda args, extra: Verdict(rows, None))
    monkeypatch.setattr(command, "verdict_provenance", lambda verdict, args: origin)
    monkeypatch.setenv("COLUMNS", str(columns))
    arguments = [str(template), "--report", str(tmp_path / "report"), "--junit-xml", str(tmp_path / "junit.xml"), *options]
    status = cli.check(cli.check_parser().parse_args(arguments), [])
    out = capsys.readouterr().out
    assert status == 1 and out.startswith("model code ran in a worker container"), out[:300]
    return out


@pytest.mark.parametrize("columns", [80, 160, 240])
def test_the_worst_folder_fits_one_screen_naming_every_failing_check_once(monkeypatch, capsys, tmp_path, columns):
    rows = worst_case_rows()
    out = gate_output(monkeypatch, capsys, tmp_path, rows, columns)
    lines = out.rstrip("\n").splitlines()
    rows_taken = sum(max(1, -(-len(line) // columns)) for line in lines)  # a line wider than the terminal wraps
    assert rows_taken <= SCREEN, f"{len(lines)} lines, {rows_taken} rows:\n{out}"
    summary = lines[lines.index("verdict by concern (every row, full reasons: -v, the report, verdict.json)"[:columns]) :]
    summary = summary[: next(n for n, line in enumerate(summary) if line.startswith("judged: "))]
    assert all(len(line) <= columns for line in summary), max(summary, key=len)
    checks = failing_checks(rows)
    assert len(checks) == 15, checks
    failures = out[out.index("failures: 20 rows of 15 checks") : out.index("not run behind a failed row")]
    assert {check: named(check, failures) for check in checks} == dict.fromkeys(checks, 1), out
    others = [check for check in checks if check != "check_handler_loads"]  # the root, named again by its rows not run
    assert {check: named(check, out) for check in others} == dict.fromkeys(others, 1)
    assert "Traceback" not in out and 'File "' not in out and "Differing items" not in out and "Use -v to get" not in out
    assert "\x1b" not in out and "\\x1b[32mGATE PASSED" in out, "a folder's string is printed escaped"
    assert "7 behind check_handler_loads" in out, "rows not run are counted under their root"
    assert re.search(r"advice: 60 rows of 6 checks", out) and "GATE FAILED" in out


def test_a_folder_with_a_few_defects_shows_each_advice_check_with_its_count_and_the_fixes(monkeypatch, capsys, tmp_path):
    """The corpus's codec folder with more: two failing checks with fixes, a crash, 60 advice rows."""
    keep = ("check_output_matches_signature", "check_model_file_loads", "test_server_resources", "check_input_", "check_bad_",
            "check_empty_", "check_non_finite", "check_template_field")  # fmt: skip
    rows = [row for row in worst_case_rows() if row.check.startswith(keep)]
    out = gate_output(monkeypatch, capsys, tmp_path, rows, 160)
    assert len(out.rstrip("\n").splitlines()) <= SCREEN, out
    advice = out[out.index("advice: 60 rows of 6 checks") :]
    for check in (
        "check_input_required",
        "check_bad_request_refused",
        "check_empty_batch_answered",
        "check_non_finite_counts_refused",
    ):
        assert named(check, advice) == 1 and f"  {check} (10 rows; fast, server @http): input " in advice, advice
    assert "harden it: raise mlserver" in advice, "an advice line starts with its reason"
    assert "fix: " + SIGNATURE_FIX.replace("'Flag'", "'Flag'") in out, out
    assert "      fix: raise the limit or lower the model's memory" in out, out
    assert "check_model_file_loads (fast): ModuleNotFoundError: No module named 'uproot'" in out, (
        "a traceback: its exception line"
    )


def test_the_full_table_still_holds_every_reason_whole(monkeypatch, capsys, tmp_path):
    out = gate_output(monkeypatch, capsys, tmp_path, worst_case_rows(), 160, "-v")
    assert "Differing items" in out and "Traceback (most recent call last):" in out and out.count("check_input_dims[") >= 6


def test_a_hundred_failing_checks_still_fit_and_are_counted(capsys):
    rows = [Row("fast", f"check_number_{n:03d}", "failed", f"defect {n}: " + "word " * 40) for n in range(100)]
    print_verdict(rows, columns=120, max_lines=16)
    out = capsys.readouterr().out
    lines = out.rstrip("\n").splitlines()
    assert len(lines) <= 16 and all(len(line) <= 120 for line in lines), out
    shown = sum(named(f"check_number_{n:03d}", out) for n in range(100))
    more = re.search(r"\.\.\. and (\d+) more \(-v, the report\)", out)
    assert more and shown + int(more.group(1)) == 100 and shown >= 20, out


def test_a_reason_in_one_line():
    assert reason_line(TRACEBACK) == "ModuleNotFoundError: No module named 'uproot'"
    assert reason_line("server folder alone failed: X\n" + TRACEBACK) == "server folder alone failed: X"
    assert reason_line(ASSERTION_DIFF).startswith("assert {'Flag'")
    assert reason_line("setup: AssertionError: refused") == "setup: refused"
    assert reason_line("dialsgate.transports.http.AnswerTooLarge: longer than 64 MiB") == "AnswerTooLarge: longer than 64 MiB"
    assert reason_line("name \x1b[2Jx\u202e  \t spaced") == "name \\x1b[2Jx\\u202e spaced"
    assert reason_line("") == ""
    assert (
        reason_line("could not serve the folder:\nthe container stopped\nits log")
        == "could not serve the folder: the container stopped"
    )
    assert (
        reason_line("the handler did not load:\n" + TRACEBACK)
        == "the handler did not load: ModuleNotFoundError: No module named 'uproot'"
    )


def test_the_fix_a_reason_states():
    assert fix_of("output 'Flag' has shape [4, 1]; NumpyCodec adds that axis: " + SIGNATURE_FIX) == SIGNATURE_FIX
    assert fix_of("input 'x': HTTP 500 (harden it: empty outputs or HTTP 400); DIALS never sends") == (
        "harden it: empty outputs or HTTP 400"
    )
    assert fix_of("would ship these: ['.env'] (remove them from CodeUri)") == "remove them from CodeUri"
    assert fix_of("IndexError: list index out of range") is None
    assert fix_of("declare nothing: this reason starts with a verb") is None
    assert fix_of("the handler crashed\n  raise the limit (in a traceback line, not the reason's)") is None


def test_a_resource_key_names_no_folder_but_its_own():
    from dialsgate.gate.verdict import resource_folder_name

    assert resource_folder_name("PixelNMF") == "PixelNMF"
    for hostile in ("../../etc", "a/b", "..", "x\x1b[2J", "", "Pixel.NMF"):
        name = resource_folder_name(hostile)
        assert "/" not in name and name not in (".", "..") and name.isascii() and name.isprintable(), name
        assert name != resource_folder_name(hostile + "!"), name


def test_the_first_line_says_model_code_did_not_run_when_no_engine_answered():
    origin = {"model_code": {"where": "worker container", "user": "the image's (uid 1000)", "limits": "memory 4 GiB"}}
    ran = [Row("fast", "check_handler_loads", "passed")]
    assert sandbox_lines(origin, ran)[0].startswith("model code ran in a worker container of the image")
    why = "no container engine answered within 60 s (docker at unix:///x.sock). Model code runs only inside the serving image: start Docker"
    absent = [*ran, Row("fast", "check_input_dims[x]", "not run", f"{why} (see container_engine)", root=ENGINE_ROOT)]
    assert sandbox_lines(origin, absent) == [f"model code did not run: {why}"]
