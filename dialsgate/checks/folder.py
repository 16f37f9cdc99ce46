"""Plain files under the template's folder: the one check every read of a folder rests on.

A folder under test is hostile input. CodeUri and ModelUri must lie inside the template's folder
through no link, and everything under CodeUri, the model file, the reference batch and every
path of ``dialsgate.toml`` must be a plain file or folder (``dialsgate.plainfiles``): a symbolic
link, a FIFO, a device or a socket is refused, and nothing behind it is read, copied, hashed,
served or zipped. When anything is refused no runtime is made (``Subject.require_plain_folder``):
every row that needs model code is ``not run (see check_folder_plain_files)``.
"""

from __future__ import annotations

from pathlib import Path

from dialsgate.checks.base import CheckFailed, case, check
from dialsgate.limits import shorten
from dialsgate.plainfiles import plain_kind, walk_plain
from dialsgate.settings import given_batch_problem, settings_problems

#: At most this many refused entries are named in the row (the count says how many there are).
NAMED = 20


def folder_problems(contract, reference_batch: Path | None = None) -> list[str]:
    """Every path of the folder under test that is not a plain file inside the template's folder.

    ``reference_batch``: the batch named on the command line, if any (it may lie anywhere, but
    must itself be a plain file)."""
    problems = [shorten(problem) for problem in contract.refused_paths]
    code_dir, model_file = Path(contract.code_dir), Path(contract.model_file)
    refused_code = any(problem.startswith("CodeUri") for problem in contract.refused_paths)
    if not refused_code:
        kind = plain_kind(code_dir)
        if kind not in ("missing", "a folder", "a file"):
            problems.append(f"CodeUri {code_dir.name} is {kind}")
        else:
            tree = walk_plain(code_dir)
            problems += [f"{code_dir.name}/{shorten(problem)}" for problem in tree.problems()]
    refused_model = any(problem.startswith("ModelUri") for problem in contract.refused_paths)
    inside_code = model_file.parent == code_dir or code_dir in model_file.parents
    if not refused_model and not (inside_code and not refused_code):
        kind = plain_kind(model_file)
        if kind not in (None, "missing"):
            problems.append(f"ModelUri {shorten(model_file.name)} is {kind}")
    batch = given_batch_problem(reference_batch)
    if batch:
        problems.append(batch)
    problems += [shorten(problem) for problem in settings_problems(contract)]
    return problems


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_folder_plain_files(subject) -> None:
    """CodeUri and ModelUri inside the template's folder through no link; no symbolic link, FIFO,
    device or socket under CodeUri, as the model file, the reference batch or a path of
    dialsgate.toml (nothing behind one is read, copied, served or zipped)."""
    problems = subject_problems(subject)
    if problems:
        named = "; ".join(problems[:NAMED]) + (f"; and {len(problems) - NAMED} more" if len(problems) > NAMED else "")
        raise CheckFailed(
            f"{len(problems)} path(s) of the folder are not plain files inside the template's folder: {named}. "
            "Nothing behind them was read, copied or served, and no model code ran: replace each link with the file "
            "itself (or remove it), keep CodeUri and ModelUri inside the template's folder"
        )


def subject_problems(subject) -> list[str]:
    """``folder_problems`` of a subject, found once per session."""
    if "_plain_problems" not in subject.__dict__:
        subject.__dict__["_plain_problems"] = folder_problems(subject.contract, getattr(subject, "reference_batch", None))
    return subject.__dict__["_plain_problems"]


def cases(contract):
    return [case(check_folder_plain_files)]
