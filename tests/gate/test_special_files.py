"""Special files git cannot hold, as a hostile folder's author would plant them: a FIFO in CodeUri,
a FIFO as the reference batch beside the template, ``README -> /dev/zero``. The whole gate (every
layer, this interpreter) must fail naming each of them, quickly: nothing waits on a FIFO, nothing
reads a device, nothing is copied, and no container holds the folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
PLAIN = REPOSITORY / "tests" / "gate" / "corpus" / "sklearn_nmf_plain"
#: Far above what the gate needs here (its layers start, the folder is refused at once) and far
#: below what a FIFO or /dev/zero would cost (forever).
TIMEOUT_SECONDS = 900


def test_fifos_and_a_device_link_fail_the_gate_naming_them(tmp_path):
    tmp_path.chmod(0o755)
    folder = tmp_path / "special_files"
    shutil.copytree(PLAIN, folder)
    code = folder / "mlserver-model"
    os.mkfifo(code / "pipe")
    os.symlink("/dev/zero", code / "README")
    os.unlink(folder / "reference_batch.npz")
    os.mkfifo(folder / "reference_batch.npz")
    report = tmp_path / "report"

    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-m", "dialsgate", "check", str(folder / "template.yaml"), "--report", str(report)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    elapsed = time.monotonic() - started

    rows = json.loads((report / "verdict.json").read_text())["rows"]
    table = "\n".join(f"{row['layer']} {row['check']} [{row['result']}] {row['reason'][:200]}" for row in rows)
    assert finished.returncode == 1, f"exit {finished.returncode}\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
    (plain_row,) = [row for row in rows if row["check"] == "check_folder_plain_files"]
    assert plain_row["result"] == "failed", table
    for named in (
        "mlserver-model/pipe is a FIFO",
        "mlserver-model/README is a symbolic link",
        "reference batch reference_batch.npz is a FIFO",
    ):
        assert named in plain_row["reason"], f"{named!r} not in {plain_row['reason']}"
    for check in ("check_handler_loads", "check_handler_answers_template_request", "check_clean_interpreter_round_trip"):
        (row,) = [row for row in rows if row["check"] == check]
        assert row["result"] == "not run" and "(see check_folder_plain_files)" in row["reason"], table
    # Nothing was made of the folder: every failing row is the plain-files row, or names it.
    others = [row for row in rows if row["result"] not in ("passed", "not applicable", "not run")]
    assert others == [plain_row], table
    assert (folder / "reference_batch.npz").is_fifo() and os.readlink(code / "README") == "/dev/zero"
    print(f"gate finished in {elapsed:.1f} s")
