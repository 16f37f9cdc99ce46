"""Model-specific pictures come from hooks; the generic report knows no model.

A hook is a callable ``hook(contract, answers, indices, out_dir)``:

* ``contract``: the :class:`dialsgate.contract.Contract` of the model folder;
* ``answers``: the :class:`dialsgate.report.facts.BatchAnswers` of the reference batch (the arrays
  sent, the handler's flags and metric, the ``.npz``'s labels when it has them);
* ``indices``: the lumisections to picture (flagged, missed anomalies, one clean one);
* ``out_dir``: an empty folder of its own to write PNG files into.

It returns a list of ``(png file name, caption)`` (file names relative to ``out_dir``; a third
element, when present, is the lumisection the picture shows, for the flags table's link; an
item whose file name is None is a note shown above the pictures), or a sentence (str) when it
does not apply to this model.

Hooks are found, in this order, without duplicates:

1. the ``picture_hooks`` argument of :func:`dialsgate.report.write_report` (callables or specs);
2. the environment variable ``DIALSGATE_REPORT_PICTURES="spec[,spec]"``;
3. the entry-point group ``dialsgate.report_pictures`` of the installed distributions.

A spec is ``module:function`` (an importable module) or ``path/to/file.py:function`` (a file
loaded by path, so a project's development code need not be on sys.path; a file inside a
package is imported as its package's module, the package loaded from the file's folders, so
that its sibling modules import too).

A hook declares the folders it is for: ``hook.applies_to(contract) -> bool`` (an attribute of
the callable). A hook without it, or that declines, is not called: hooks run in the gate's own
interpreter and may load the model file, so they run only on the folders they were written for.
None is called when the pickle audit of the model file finds dangerous globals or could not
walk the whole file.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from dialsgate.contract.template import Contract
from dialsgate.modelfile.pickle_audit import audit_model_file
from dialsgate.report.facts import BatchAnswers, Picture, PictureFacts, PictureSet
from dialsgate.settings import hook_file_problem, settings

GROUP = "dialsgate.report_pictures"
ENVIRONMENT_VARIABLE = "DIALSGATE_REPORT_PICTURES"
#: The folder (beside index.html) the hooks write into, one subfolder per hook; emptied each run.
PICTURES_FOLDER = "pictures"

Hook = Callable[..., "list | str"]


def _package_module(path: Path) -> tuple[Path, str] | None:
    """``(folder, dotted name)`` when ``path`` lies in a package (folders with ``__init__.py``):
    the folder that holds the outermost package, and the module's name from there
    (``src``, ``tools.pictures`` for src/tools/pictures.py); None for a file in no package."""
    parts, folder = [path.stem], path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1 or not all(part.isidentifier() for part in parts):
        return None
    return folder, ".".join(parts)


def _import_from_package(folder: Path, dotted: str):
    """Import ``dotted`` with its outermost package loaded from ``folder``, not from sys.path: its
    other modules then import at call time too (a hook's ``from package.sibling import ...``),
    with the gate run from anywhere (tox, an installed dialsgate). None when a package of that
    name was already imported from elsewhere."""
    top = dotted.split(".", 1)[0]
    known = sys.modules.get(top)
    if known is not None:
        places = [Path(place).resolve() for place in getattr(known, "__path__", [])]
        return importlib.import_module(dotted) if (folder / top).resolve() in places else None
    init = folder / top / "__init__.py"
    loader_spec = importlib.util.spec_from_file_location(top, init, submodule_search_locations=[str(folder / top)])
    if loader_spec is None or loader_spec.loader is None:
        return None
    package = importlib.util.module_from_spec(loader_spec)
    sys.modules[top] = package
    try:
        loader_spec.loader.exec_module(package)
        return importlib.import_module(dotted)
    except BaseException:
        for name in [name for name in sys.modules if name == top or name.startswith(f"{top}.")]:
            del sys.modules[name]
        raise


def load_spec(spec: str) -> Hook:
    """``module:function`` or ``path/to/file.py:function`` -> the callable.

    A file inside a package is imported as that package's module (the package loaded from the
    file's folders), so that the modules beside it import as they do in development; any other
    file is loaded on its own."""
    target, sep, attribute = spec.strip().rpartition(":")
    if not sep or not target or not attribute:
        raise ValueError(f"picture hook {spec!r} is not module:function or file.py:function")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ImportError(f"picture hook file {path} not found")
        packaged = _package_module(path)
        module = _import_from_package(*packaged) if packaged is not None else None
        if module is None:
            module = _load_file(path)
    else:
        module = importlib.import_module(target)
    return getattr(module, attribute)


def _load_file(path: Path):
    """The module of one file, loaded by path under a name of its own."""
    name = "dialsgate_report_hook_" + re.sub(r"\W", "_", path.stem)
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ImportError(f"picture hook file {path} not found")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up there
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def registered_hooks(picture_hooks=None) -> list[tuple[str, Hook | str]]:
    """(name, callable or spec) of every hook: argument, environment variable, entry points."""
    found: list[tuple[str, Hook | str]] = []
    for hook in picture_hooks or ():
        found.append((hook, hook) if isinstance(hook, str) else (getattr(hook, "__qualname__", repr(hook)), hook))
    for spec in os.environ.get(ENVIRONMENT_VARIABLE, "").split(","):
        if spec.strip():
            found.append((spec.strip(), spec.strip()))
    for point in entry_points(group=GROUP):
        found.append((f"{point.name} ({point.value})", point.value))
    unique, seen = [], set()
    for name, hook in found:
        key = hook if isinstance(hook, str) else id(hook)
        if key not in seen:
            seen.add(key)
            unique.append((name, hook))
    return unique


def model_file_refusal(contract: Contract) -> str | None:
    """Why the model file must not be loaded by a hook, or None when its pickle audit is clean
    (or the file is positively another format than a pickle)."""

    if not contract.model_file.is_file():
        return None  # nothing to load; a hook that needs it says so itself
    try:
        audit = audit_model_file(contract.model_file, contract.code_dir)
    except Exception as error:
        return f"the pickle audit could not read the model file ({type(error).__name__}: {error}): no hook is called"
    refusal = audit.refusal() if audit is not None else None
    return f"{refusal}: it is not loaded, no hook is called" if refusal else None


def hook_declines(function, contract: Contract) -> str | None:
    """Why a hook is not called for this folder (None: it declared itself for it)."""
    applies_to = getattr(function, "applies_to", None)
    if not callable(applies_to):
        return "the hook declares no applies_to(contract): it is called for no folder"
    if not applies_to(contract):
        return f"the hook is not for this folder ({contract.code_dir})"
    return None


def _folder_name(position: int, name: str) -> str:
    """1-report_pictures.py-pictures for /some/where/report_pictures.py:pictures."""
    return f"{position}-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name.split(" ")[0]).name).strip("-.")[:40]


def run_hooks(contract: Contract, answers: BatchAnswers, indices: list[int], out_dir: Path, picture_hooks=None) -> PictureFacts:
    """Call every registered hook; a hook that fails becomes a sentence, never a failed report."""
    folder = Path(out_dir) / PICTURES_FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    hooks = registered_hooks(picture_hooks)
    if not hooks:
        return PictureFacts(
            sentence=f"No picture hook is registered (entry-point group {GROUP}, {ENVIRONMENT_VARIABLE} or "
            "write_report(picture_hooks=...)): no model pictures."
        )
    refusal = model_file_refusal(contract)
    if refusal:
        return PictureFacts(sentence=refusal)
    facts = PictureFacts()
    for position, (name, hook) in enumerate(hooks, start=1):
        subfolder = folder / _folder_name(position, name)
        subfolder.mkdir(parents=True, exist_ok=True)
        picture_set = PictureSet(hook=name)
        facts.sets.append(picture_set)
        try:
            function = load_spec(hook) if isinstance(hook, str) else hook
            declined = hook_declines(function, contract)
            if declined:
                picture_set.sentence = declined
                continue
            answered = function(contract, answers, list(indices), subfolder)
        except Exception as error:  # the pictures are an extra: say why they are missing
            picture_set.sentence = f"the hook failed: {type(error).__name__}: {error}"
            continue
        if isinstance(answered, str):
            picture_set.sentence = answered
            continue
        for item in answered:
            file_name, caption, *rest = item
            if file_name is None:
                picture_set.notes.append(str(caption))
                continue
            path = (subfolder / file_name).resolve()
            if not path.is_relative_to(subfolder.resolve()) or not path.is_file():
                picture_set.notes.append(f"the hook named {file_name!r}, which is not a file it wrote: not shown")
                continue
            ls = int(rest[0]) if rest and rest[0] is not None else None
            src = path.relative_to(Path(out_dir).resolve()).as_posix()
            anchor = f"picture-{position}-{len(picture_set.pictures)}" if ls is None else f"picture-{position}-ls-{ls}"
            picture_set.pictures.append(Picture(src=src, caption=str(caption), anchor=anchor, ls=ls))
    return facts


def configured_hooks(contract) -> list[str]:
    """The report picture hooks the author lists in dialsgate.toml (``report_pictures``); a
    ``file.py:function`` spec is relative to the template's folder. The report knows no model.
    They are the repository's code and would run on this machine: ``dialsgate check`` runs them
    only with ``--run-report-hooks``."""
    specs = []
    for spec in settings(contract).get("report_pictures", []):
        target, _, function = str(spec).rpartition(":")
        if target.endswith(".py"):
            if hook_file_problem(contract, target):
                continue  # outside the template's folder or not a plain file: check_folder_plain_files names it
            spec = f"{contract.template_path.parent / target}:{function}"
        specs.append(spec)
    return specs
