"""Copy the model package into the server folders, byte for byte; ``--check`` reports drift.

    python -m dialsgate.sync            # every pair of PAIRS (both deployments)
    python -m dialsgate.sync --check    # exit 1 and name the differing files

PAIRS: model_src/pixelnmf into each deployment's server folder, and the one handler
(mlserver-model/app.py) into the other deployments' folders.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPOSITORY / "model_src" / "pixelnmf"
DEFAULT_TARGET = REPOSITORY / "mlserver-model" / "pixelnmf"
#: Every (source, target) the default command syncs: folders or single files.
PAIRS = (
    (DEFAULT_SOURCE, DEFAULT_TARGET),
    (DEFAULT_SOURCE, REPOSITORY / "mlserver-model-2025f" / "pixelnmf"),
    (REPOSITORY / "mlserver-model" / "app.py", REPOSITORY / "mlserver-model-2025f" / "app.py"),
)
#: Interpreter caches are never part of the package (and must not reach the zip).
IGNORED = ("__pycache__", ".pyc", ".pyo")


def _files(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and not any(part == "__pycache__" for part in path.parts) and not path.name.endswith(IGNORED)
    }


def drift(source: Path = DEFAULT_SOURCE, target: Path = DEFAULT_TARGET) -> dict[str, list[str]]:
    """{"missing": in source only, "extra": in target only, "different": content differs}."""
    if source.is_file():  # a single file; names are relative to the target's folder
        if not target.is_file():
            return {"missing": [target.name], "extra": [], "different": []}
        return {"missing": [], "extra": [], "different": [] if filecmp.cmp(source, target, shallow=False) else [target.name]}
    wanted, present = _files(source), _files(target)
    return {
        "missing": sorted(wanted - present),
        "extra": sorted(present - wanted),
        "different": sorted(name for name in wanted & present if not filecmp.cmp(source / name, target / name, shallow=False)),
    }


def describe(found: dict[str, list[str]], target: Path = DEFAULT_TARGET) -> str:
    folder = target.parent if target.suffix == ".py" else target
    lines = [f"{kind}: {folder / name}" for kind, names in found.items() for name in names]
    return "\n".join(lines)


def sync(source: Path = DEFAULT_SOURCE, target: Path = DEFAULT_TARGET) -> dict[str, list[str]]:
    found = drift(source, target)
    if source.is_file():
        if any(found.values()):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return found
    for name in found["extra"]:
        (target / name).unlink()
    for name in found["missing"] + found["different"]:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)
    for cache in list(target.rglob("__pycache__")) if target.is_dir() else []:
        shutil.rmtree(cache)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Sync the model package into the server folder.")
    parser.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    parser.add_argument("--source", type=Path, help="one source (default: every pair of PAIRS)")
    parser.add_argument("--target", type=Path)
    args = parser.parse_args(argv)
    if (args.source is None) != (args.target is None):
        parser.error("--source and --target go together")
    pairs = PAIRS if args.source is None else ((args.source, args.target),)
    status = 0
    for source, target in pairs:
        if args.check:
            found = drift(source, target)
            if any(found.values()):
                print(f"{target} has drifted from {source} (run: python -m dialsgate.sync):", file=sys.stderr)
                print(describe(found, target), file=sys.stderr)
                status = 1
            else:
                print(f"{target} is in sync with {source}")
            continue
        found = sync(source, target)
        changed = sum(len(names) for names in found.values())
        print(f"synced {source} -> {target} ({changed} file(s) changed)")
    return status


if __name__ == "__main__":
    sys.exit(main())
