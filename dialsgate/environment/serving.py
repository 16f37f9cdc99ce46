"""What a model folder needs from its serving image, and the host fallback environment.

Every check that imports a handler, loads a joblib or computes an expected answer runs model
code; it must run under the image's versions or its verdict means nothing (a joblib written
with scikit-learn 1.9 loads under 1.9 and fails in DIALS). ``folder_needs`` finds the image
packages a folder needs beyond the image's core (MLServer and its scikit-learn runtime), from
its imports and from the joblib's globals; the worker container runs the serving image with them
(``dialsgate.container.worker``).

Only on a machine without a container engine, and only when asked (``--no-container``), is
model code run on the host instead: in a virtual environment built from the image profile (the
core plus those packages, at the image's pins, under a host Python of the image's minor
version). That verdict cannot pass the gate: it is not the image (the host's C libraries and
user) and the folder's code runs with the host's network and files in reach.

Environments are cached by the hash of what they hold, under ``$DIALSGATE_CACHE_DIR`` (default
``$XDG_CACHE_HOME/dialsgate``, i.e. ``~/.cache/dialsgate``), and shared between projects.

Settings (environment):

``DIALSGATE_CACHE_DIR``       where environments (and wheel caches) live.
``DIALSGATE_SERVING_PYTHON``  the interpreter to build them with (default: found by version).
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from dialsgate.environment.profiles import ImageProfile
from dialsgate.limits import limit
from dialsgate.plainfiles import NotPlain, plain_kind, read_plain, walk_plain
from dialsgate.pysource import parse

CACHE_ENV = "DIALSGATE_CACHE_DIR"
PYTHON_ENV = "DIALSGATE_SERVING_PYTHON"
#: Bump when the way environments are built changes (old ones are then rebuilt).
RECIPE = "1"


class ServingEnvironmentError(RuntimeError):
    """No serving environment could be built (no interpreter of the image's version, pip failed)."""


def cache_dir() -> Path:
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dialsgate"


# --------------------------------------------------------------------------- what a folder needs


@dataclass(frozen=True)
class ImportSite:
    module: str  # dotted, as written
    where: str  # "app.py:12" or "the model file (global numpy.core.multiarray._reconstruct)"
    optional: bool = False  # inside `try: ... except ImportError:`: the code runs without it


def folder_module_names(folder: Path) -> set[str]:
    """Top-level names importable from a folder on sys.path (modules, packages, namespace folders)."""
    names = set()
    # Plain entries only (a link is no module: it is refused); a hidden folder is no module either.
    tree = walk_plain(Path(folder), skip_hidden=True)
    with_code = {path.relative_to(tree.root).parts[0] for path in tree.files if path.suffix == ".py" and path.parent != tree.root}
    for entry in tree.folders:
        if entry.parent == tree.root and not entry.name.startswith(".") and entry.name != "__pycache__":
            if entry.name.isidentifier() and entry.name in with_code:
                names.add(entry.name)
    for entry in tree.files:
        if entry.parent != tree.root or entry.name.startswith("."):
            continue
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.suffix in (".so", ".pyd") or ".cpython-" in entry.name:
            names.add(entry.name.split(".")[0])
    return names


def repository_root(template_folder: Path) -> Path:
    """The checkout around the template: the nearest folder with .git or pyproject.toml."""
    for folder in [template_folder, *template_folder.parents]:
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return folder
    return template_folder


def repository_module_names(folders: list[Path], provided: set[str]) -> list[str]:
    """Modules of the given folders and of their subfolders (e.g. src/*)."""
    names = set()
    for top in folders:
        for folder in [top, *(p for p in top.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))]:
            names |= folder_module_names(folder)
            if folder != top and not (folder / "__init__.py").exists():
                names.add(folder.name)  # a plain folder is importable as a namespace package
    return sorted(name for name in names - provided if name.isidentifier() and not name.startswith("__"))


def clean_spec(template_path: Path, code_dir: Path, load_as_pickle: bool) -> dict:
    """What the clean-interpreter round trip checks in its fresh process, besides loading and
    answering: the repository's own modules (around the template) must not be importable, the
    folder's own modules must come from the folder, and the model file must load strictly."""
    provided = folder_module_names(code_dir)
    repository = repository_root(template_path.parent)
    return {
        "repository": str(repository),
        "forbidden": repository_module_names(sorted({repository, template_path.parent}), provided),
        "provided": sorted(provided),
        # A pickle is loaded strictly first (version warnings as errors); another format only by the handler.
        "load_as_pickle": load_as_pickle,
    }


def folder_imports(folder: Path) -> list[ImportSite]:
    """Every absolute import statement in the folder's Python files (relative imports stay inside)."""
    sites = []
    for path in walk_plain(Path(folder)).files:
        if path.suffix != ".py" or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(folder)
        try:
            tree = parse(read_plain(path, int(limit("source_file_bytes"))), filename=str(relative))
        except (SyntaxError, ValueError, NotPlain):
            continue  # reported by the Python-version check, which names the line
        package = list(relative.parts[:-1]) if relative.name == "__init__.py" else list(relative.with_suffix("").parts[:-1])
        for node, optional in _run_nodes(tree):
            where = f"{relative}:{node.lineno}" if hasattr(node, "lineno") else str(relative)
            if isinstance(node, ast.Import):
                sites += [ImportSite(alias.name, where, optional) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                sites.append(ImportSite(node.module, where, optional))
            elif isinstance(node, ast.ImportFrom) and node.level > 0 and node.module:
                # `from .model import X` inside package a.b is `a.b.model`.
                base = package[: len(package) - (node.level - 1)] if node.level - 1 <= len(package) else []
                if base:
                    sites.append(ImportSite(".".join([*base, node.module]), where, optional))
    return sites


#: Exceptions whose handler makes an import optional: `try: import x / except ImportError: ...`.
OPTIONAL_IMPORT_HANDLERS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _run_nodes(tree: ast.AST):
    """Every node that can run, with whether it sits in the body of a try whose handler catches
    the ImportError (an optional import: the code runs without it). Nodes under
    ``if TYPE_CHECKING:`` never run and are left out."""

    def guarded_try(node) -> bool:
        if not isinstance(node, ast.Try):
            return False
        for handler in node.handlers:
            if handler.type is None:
                return True
            names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            if any(isinstance(name, ast.Name) and name.id in OPTIONAL_IMPORT_HANDLERS for name in names):
                return True
        return False

    def type_checking(node) -> bool:
        test = getattr(node, "test", None)
        return isinstance(node, ast.If) and (
            (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
        )

    pending = [(tree, False)]
    while pending:
        node, optional = pending.pop()
        yield node, optional
        if guarded_try(node):
            pending.extend((child, True) for child in node.body)
            pending.extend((child, optional) for part in (node.handlers, node.orelse, node.finalbody) for child in part)
            continue
        if type_checking(node):
            pending.extend((child, optional) for child in node.orelse)
            continue
        pending.extend((child, optional) for child in ast.iter_child_nodes(node))


def module_in_folder(folder: Path, dotted: str) -> bool:
    """Is ``dotted`` a module or package (regular or namespace) of the folder?"""
    path = folder.joinpath(*dotted.split("."))
    # lstat only (plain_kind): a link named like a module is no module of the folder.
    if plain_kind(path.with_suffix(".py")) is None or plain_kind(path) == "a folder":
        return True
    return any(plain_kind(found) is None for found in path.parent.glob(f"{path.name}.*.so"))


@dataclass
class Needs:
    """What a model folder needs from the image: extra distributions, and modules it cannot have."""

    extras: dict[str, str] = field(default_factory=dict)  # distribution -> version (beyond the core)
    missing: dict[str, list[str]] = field(default_factory=dict)  # top-level module -> where it is imported
    missing_in_folder: dict[str, list[str]] = field(default_factory=dict)  # dotted module of the folder that is not there
    newer_stdlib: dict[str, list[str]] = field(default_factory=dict)  # stdlib of a newer Python only

    def requirements(self, profile: ImageProfile) -> list[str]:
        return sorted(f"{name}=={version}" for name, version in self.extras.items())


def folder_needs(folder: Path, profile: ImageProfile, pickle_modules: list[ImportSite] = ()) -> Needs:
    """Map the folder's imports (and the model file's globals) onto the image's packages."""
    provided = folder_module_names(folder)
    stdlib = profile.stdlib
    newer = frozenset(sys.stdlib_module_names) - stdlib if sys.version_info[:2] > profile.python_minor else frozenset()
    needs = Needs()
    for site in [*folder_imports(folder), *pickle_modules]:
        top = site.module.split(".")[0]
        if top in provided:
            if not module_in_folder(folder, site.module) and not site.optional:
                needs.missing_in_folder.setdefault(site.module, []).append(site.where)
            continue
        if top in stdlib or top == "__future__":
            continue
        if top in newer:
            if not site.optional:
                needs.newer_stdlib.setdefault(top, []).append(site.where)
            continue
        distribution = profile.distribution_of(site.module)
        if distribution is None:
            if not site.optional:
                needs.missing.setdefault(top, []).append(site.where)
        elif distribution not in profile.core:
            # An optional import the image has is imported there, and that branch is the one
            # DIALS runs: so it is the one the checks must run.
            needs.extras[distribution] = profile.packages[distribution]
    return needs


# --------------------------------------------------------------------------- interpreter


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        run = subprocess.run(
            [python, "-I", "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if run.returncode != 0:
        return None  # e.g. a pyenv shim for a version that is not selected
    major, minor = run.stdout.split()
    return int(major), int(minor)


@cache
def find_python(minor: tuple[int, int]) -> str:
    """An interpreter of the image's Python minor version, or an error saying how to provide one."""
    wanted = f"{minor[0]}.{minor[1]}"
    given = os.environ.get(PYTHON_ENV)
    if given:
        if _version_of(given) != minor:
            raise ServingEnvironmentError(f"{PYTHON_ENV}={given} is not a working Python {wanted} (the image's version)")
        return given
    candidates = [shutil.which(f"python{wanted}"), f"/usr/bin/python{wanted}", f"/usr/local/bin/python{wanted}"]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{wanted}.*/bin/python{wanted}")), reverse=True)
    candidates += [sys.executable] if sys.version_info[:2] == minor else []
    for candidate in candidates:
        if candidate and os.path.exists(candidate) and _version_of(candidate) == minor:
            return candidate
    raise ServingEnvironmentError(
        f"no Python {wanted} interpreter found (the serving image runs Python {wanted}; model code is only judged under it). "
        f"Install one (e.g. `pyenv install {wanted}`, or your distribution's python{wanted}) or set {PYTHON_ENV}=/path/to/python{wanted}"
    )


# --------------------------------------------------------------------------- environments


@dataclass(frozen=True)
class ServingEnvironment:
    root: Path
    profile: ImageProfile
    requirements: tuple[str, ...]  # beyond the core

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def installed(self) -> dict[str, str]:
        """{normalised distribution: version} recorded when the environment was built."""
        return json.loads((self.root / "dialsgate-env.json").read_text())["installed"]


def environment_key(profile: ImageProfile, python_version: str, requirements: list[str]) -> str:
    digest = hashlib.sha256()
    for part in [
        RECIPE,
        profile.name,
        python_version,
        profile.core_file.read_text(),
        profile.packages_file.read_text(),
        *requirements,
    ]:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on ``path`` (created), for work two gate runs must not do at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_environment(profile: ImageProfile, requirements: list[str], log=print) -> ServingEnvironment:
    """The cached environment for the core plus ``requirements``; built (1-3 min) when missing."""
    python = find_python(profile.python_minor)
    version = ".".join(map(str, _version_of(python)))
    key = environment_key(profile, version, requirements)
    root = cache_dir() / "envs" / f"{profile.name}-py{version}-{key}"
    environment = ServingEnvironment(root, profile, tuple(requirements))
    if (root / "dialsgate-env.json").is_file():
        return environment
    with locked(cache_dir() / "envs" / f".{root.name}.lock"):
        if (root / "dialsgate-env.json").is_file():
            return environment
        _build(environment, python, log)
    return environment


def _build(environment: ServingEnvironment, python: str, log) -> None:
    root, profile = environment.root, environment.profile
    extras = f" + {', '.join(environment.requirements)}" if environment.requirements else ""
    log(f"building the serving environment {root.name}: Python {python}, {profile.name} core{extras} (once; cached)")
    start = time.perf_counter()
    # A venv cannot be moved (its path is baked into its scripts): it is built in place and
    # counts as complete only once dialsgate-env.json is written, last.
    shutil.rmtree(root, ignore_errors=True)
    run = subprocess.run([python, "-m", "venv", str(root)], capture_output=True, text=True)
    if run.returncode != 0:
        raise ServingEnvironmentError(f"{python} -m venv {root} failed: {run.stderr.strip()}")
    pip = [str(root / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    command = [
        *pip,
        "install",
        "--quiet",
        "-r",
        str(profile.core_file),
        *environment.requirements,
        "-c",
        str(profile.packages_file),
    ]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise ServingEnvironmentError(
            f"installing the image's packages failed ({' '.join(command[3:])}):\n{run.stderr.strip()[-3000:]}"
        )
    freeze = subprocess.run([*pip, "list", "--format", "json"], capture_output=True, text=True, check=True)
    installed = {entry["name"].lower().replace("_", "-"): entry["version"] for entry in json.loads(freeze.stdout)}
    record = {"profile": profile.name, "python": python, "requirements": list(environment.requirements), "installed": installed}
    (root / "dialsgate-env.json").write_text(json.dumps(record, indent=1, sort_keys=True))
    log(f"serving environment ready after {time.perf_counter() - start:.0f} s: {root}")
