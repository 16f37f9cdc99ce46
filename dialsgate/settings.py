"""The model author's gate settings: ``dialsgate.toml`` beside the template (strict, known failures,
signed inputs, report pictures, the reference batch), and the reference batch beside it.

Every path here is a folder's path, so it obeys ``plainfiles``: ``dialsgate.toml`` and the
reference batch are read only as plain files inside the template's folder (never through a
link); ``settings_problems`` says which are not, for ``check_folder_plain_files``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from dialsgate.plainfiles import NotPlain, inside, plain_kind, read_plain

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SETTINGS_FILE = "dialsgate.toml"
#: dialsgate.toml is read only up to this many bytes (it holds a few settings).
MAX_SETTINGS_BYTES = 1 * 2**20
#: Where a reference batch is looked for beside the template when the settings name none.
BATCH_CANDIDATES = ("tests/data/reference_batch.npz", "reference_batch.npz")


def _batch_candidate(contract) -> tuple[Path | None, str | None]:
    """(the reference batch to use, why a path was refused): ``reference_batch`` of the settings
    (inside the template's folder), else the first candidate beside the template that exists."""
    folder = contract.template_path.parent
    given = settings(contract).get("reference_batch")
    if given:
        try:
            path = inside(folder, str(given))
        except NotPlain as error:
            return None, f"reference_batch of {SETTINGS_FILE}: {error}"
        kind = plain_kind(path)
        if kind not in (None, "missing"):
            return None, f"reference_batch of {SETTINGS_FILE}: {given} is {kind}, not a plain file: it is not read"
        return path, None
    for candidate in BATCH_CANDIDATES:
        try:
            path = inside(folder, candidate)
        except NotPlain as error:
            return None, f"reference batch {candidate}: {error}"
        if os.path.lexists(path):
            kind = plain_kind(path)
            if kind is not None:
                return None, f"reference batch {candidate} is {kind}, not a plain file: it is not read"
            return path, None
    return None, None


def reference_batch_beside(contract) -> Path | None:
    """The one reference-batch lookup: ``reference_batch`` of the template's settings (relative to
    the template's folder), else tests/data/reference_batch.npz or reference_batch.npz beside the
    template, if present. A refused path (a link, a FIFO, outside the folder) gives None (sample
    data are sent; ``check_folder_plain_files`` fails naming it)."""
    return _batch_candidate(contract)[0]


def given_batch_problem(path: Path | None) -> str | None:
    """Why a reference batch named on the command line is refused: it must itself be a plain
    file (not a link, a FIFO or a device); it may lie anywhere, since the caller chose it."""
    if path is None:
        return None
    kind = plain_kind(Path(path))
    if kind in (None, "missing"):
        return None
    return f"--reference-batch {Path(path).name} is {kind}, not a plain file: it is not read"


def _settings_path(contract) -> Path:
    return contract.template_path.parent / SETTINGS_FILE


def _read_settings(contract) -> tuple[dict, str | None]:
    """The settings file's table (a fresh copy), read once per version of the file in a process."""
    path = _settings_path(contract)
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return {}, None
    except OSError as error:
        return {}, f"{SETTINGS_FILE}: {error.strerror or error}"
    key = (str(path), found.st_ino, found.st_size, found.st_mtime_ns)
    if key not in _READ:
        try:
            _READ[key] = (tomllib.loads(read_plain(path, MAX_SETTINGS_BYTES).decode("utf-8")), None)
        except NotPlain as error:
            _READ[key] = ({}, f"{SETTINGS_FILE}: {error}")
    data, problem = _READ[key]
    return copy.deepcopy(data), problem


#: Settings files read in this process, by (path, inode, size, mtime): read once per gate run.
_READ: dict[tuple, tuple[dict, str | None]] = {}


def settings(contract) -> dict:
    """The author's gate settings for this template: ``dialsgate.toml`` beside it.

    Top-level keys (``strict``, ``[known_failures]``, ...) apply to every template of the folder;
    a ``[template."<file name>"]`` table adds to them for one template (its ``known_failures``
    merged with the shared ones), so two templates beside one file keep their own settings.
    A dialsgate.toml that is not a plain file (a link, a FIFO) is not read: no settings.
    """
    data, _ = _read_settings(contract)
    if not data:
        return {}
    per_template = data.pop("template", {}).get(contract.template_path.name, {})
    merged = {**data, **per_template}
    merged["known_failures"] = {**data.get("known_failures", {}), **per_template.get("known_failures", {})}
    return merged


def hook_file_problem(contract, target: str) -> str | None:
    """Why a ``file.py`` of ``report_pictures`` is refused (outside the template's folder, a link)."""
    try:
        path = inside(contract.template_path.parent, target)
    except NotPlain as error:
        return f"report_pictures of {SETTINGS_FILE}: {error}"
    kind = plain_kind(path)
    if kind not in (None, "missing"):
        return f"report_pictures of {SETTINGS_FILE}: {target} is {kind}, not a plain file"
    return None


def settings_problems(contract) -> list[str]:
    """Every path of the settings (and the settings file itself) that is not a plain file inside
    the template's folder: dialsgate.toml, reference_batch, the batch found beside the template,
    the ``file.py`` of each ``report_pictures`` entry."""
    problems = []
    _, refused = _read_settings(contract)
    if refused:
        problems.append(refused)
    _, batch_refused = _batch_candidate(contract)
    if batch_refused:
        problems.append(batch_refused)
    for spec in settings(contract).get("report_pictures", []):
        target = str(spec).rpartition(":")[0]
        if target.endswith(".py"):
            problem = hook_file_problem(contract, target)
            if problem:
                problems.append(problem)
    return problems


def known_failures(contract) -> dict[str, str]:
    """{check id: reason} from ``known_failures`` of the settings (``dialsgate.toml``).

    Declared by the model's author, never in dialsgate: they run as strict xfails (seen, and a
    fix is noticed) and the pre-deploy gate refuses any of them.
    """
    return {str(key): str(value) for key, value in settings(contract).get("known_failures", {}).items()}
