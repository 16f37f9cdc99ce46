"""Copy the model package into the server folder, byte for byte; ``--check`` reports drift.

    python -m dialsgate.sync            # write mlserver-model/pixelnmf from model_src/pixelnmf
    python -m dialsgate.sync --check    # exit 1 and name the differing files
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
    wanted, present = _files(source), _files(target)
    return {
        "missing": sorted(wanted - present),
        "extra": sorted(present - wanted),
        "different": sorted(name for name in wanted & present if not filecmp.cmp(source / name, target / name, shallow=False)),
    }


def describe(found: dict[str, list[str]], target: Path = DEFAULT_TARGET) -> str:
    lines = [f"{kind}: {target / name}" for kind, names in found.items() for name in names]
    return "\n".join(lines)


def sync(source: Path = DEFAULT_SOURCE, target: Path = DEFAULT_TARGET) -> dict[str, list[str]]:
    found = drift(source, target)
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
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--target", type=Path, default=DEFAULT_TARGET)
    args = parser.parse_args(argv)
    if args.check:
        found = drift(args.source, args.target)
        if any(found.values()):
            print(f"{args.target} has drifted from {args.source} (run: python -m dialsgate.sync):", file=sys.stderr)
            print(describe(found, args.target), file=sys.stderr)
            return 1
        print(f"{args.target} is in sync with {args.source}")
        return 0
    found = sync(args.source, args.target)
    changed = sum(len(names) for names in found.values())
    print(f"synced {args.source} -> {args.target} ({changed} file(s) changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
