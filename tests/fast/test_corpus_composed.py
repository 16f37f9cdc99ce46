"""The composed corpus folders are exactly their parts (tests/gate/corpus/build_composed.py):
the same server folders, byte for byte, and the parts' resources under one template."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "gate" / "corpus"
spec = importlib.util.spec_from_file_location("build_composed", CORPUS / "build_composed.py")
composed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(composed)


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.parametrize("name", sorted(composed.COMPOSED))
def test_a_composed_folder_is_its_parts(name):
    _, parts, batch = composed.COMPOSED[name]
    folder = CORPUS / name
    for part, inside, here in parts:
        assert files_of(folder / here) == files_of(CORPUS / part / inside), f"{name}/{here} differs from {part}/{inside}"
    assert (folder / "reference_batch.npz").read_bytes() == (CORPUS / batch / "reference_batch.npz").read_bytes()
    assert (folder / "template.yaml").read_text() == composed.template_of(name)
