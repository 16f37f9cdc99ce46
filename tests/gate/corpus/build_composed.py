"""Assemble the corpus folders whose resources are other corpus folders' resources: a template
with two MLServer resources, and one with an MLServer resource beside a Tritonserver one.

    python tests/gate/corpus/build_composed.py          # after build_corpus.py (any Python)

Each composed folder stands alone, as DIALS receives it: its server folders are copies of the
parts (a CodeUri must lie inside the template's folder), its template the parts' resources under
one ``Resources``. tests/fast/test_corpus_composed.py keeps the copies equal to their parts.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

HEAD = 'TemplateFormatVersion: "2025-03-31"\nDescription: >-\n  Gate corpus: {what}\n\nResources:\n'

#: folder -> (what it is, [(part folder, its folder in the part, its folder here)], reference batch's part)
COMPOSED = {
    "two_mlserver_resources": (
        "two MLServer resources in one template, as a physicist deploys a pair of models of one monitoring "
        "element: a scikit-learn NMF and an XGBoost classifier, each with its own server folder, one reference "
        "batch (both take the BPix1 occupancy map).",
        [("sklearn_nmf_plain", "mlserver-model", "nmf-model"), ("xgboost_booster_json", "mlserver-model", "bdt-model")],
        "sklearn_nmf_plain",
    ),
    "mlserver_and_triton": (
        "an MLServer resource beside a Tritonserver ONNX resource (the shape of the DISM examples' multi-model "
        "template); the gate judges the MLServer one and names the Triton one not supported.",
        [("sklearn_nmf_plain", "mlserver-model", "nmf-model"), ("triton_onnx_resource", "model", "model")],
        "sklearn_nmf_plain",
    ),
}


def resources_of(part: str, inside: str, here: str) -> str:
    """The part's ``Resources`` block, its folder renamed to ``here``."""
    text = (HERE / part / "template.yaml").read_text()
    block = text[text.index("Resources:\n") + len("Resources:\n") :]
    return block.replace(f"{inside}/", f"{here}/").rstrip() + "\n"


def template_of(name: str) -> str:
    what, parts, _ = COMPOSED[name]
    return HEAD.format(what=what) + "\n".join(resources_of(*part) for part in parts)


def build(name: str) -> None:
    _, parts, batch = COMPOSED[name]
    folder = HERE / name
    for part, inside, here in parts:
        shutil.rmtree(folder / here, ignore_errors=True)
        shutil.copytree(HERE / part / inside, folder / here, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(HERE / batch / "reference_batch.npz", folder / "reference_batch.npz")
    (folder / "template.yaml").write_text(template_of(name))


def main() -> int:
    for name in COMPOSED:
        build(name)
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
