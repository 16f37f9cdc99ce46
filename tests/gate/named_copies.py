"""Copies of corpus folders whose containers a test can tell apart from any other run's."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def copy_named(tmp_path: Path, folder: str, prefix: str) -> tuple[Path, str]:
    """A 0755 copy of a corpus folder whose model Name is new (``prefix-<random>``): the worker and
    served containers of a run on it carry that name."""
    copy = tmp_path / folder
    shutil.copytree(CORPUS / folder, copy)
    for path in [tmp_path, copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    template = copy / "template.yaml"
    text = template.read_text()
    old = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("Name: corpus-"))
    name = f"{prefix}-{secrets.token_hex(3)}"
    template.write_text(text.replace(f"Name: {old}", f"Name: {name}"))
    return template, name
