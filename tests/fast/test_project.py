"""Project checks of this repository (not part of the generic contract): the server folder is a
synced copy of the model package, and the handler advertises the template's signature."""

from __future__ import annotations

from pathlib import Path

from dialsgate import sync

REPOSITORY = Path(__file__).resolve().parents[2]


def test_server_package_in_sync_with_model_src():
    found = sync.drift()
    assert not any(found.values()), (
        "mlserver-model/ has drifted from model_src/ (run: python -m dialsgate.sync):\n" + sync.describe(found)
    )


def test_server_folder_holds_only_handler_package_and_model():
    entries = sorted(p.name for p in (REPOSITORY / "mlserver-model").iterdir() if p.name != "__pycache__")
    assert entries == ["app.py", "pixelnmf", "pixelnmf.joblib"], f"unexpected entries in mlserver-model/: {entries}"


def test_handler_metadata_advertises_the_template_signature(subject, contract):
    """Our handler fills /v2/models/<name> metadata with exactly the template's signature."""
    metadata = subject.handler.metadata()
    advertised_inputs = {t["name"]: (t["datatype"], list(t["shape"])) for t in metadata["inputs"]}
    advertised_outputs = {t["name"]: (t["datatype"], list(t["shape"])) for t in metadata["outputs"]}
    # The declared OMS metadata inputs are required too, so they are advertised with the maps.
    assert advertised_inputs == {sig.name: (sig.datatype, list(sig.dims)) for sig in contract.inputs + contract.metadata_inputs}
    assert advertised_outputs == {sig.name: (sig.datatype, list(sig.dims)) for sig in contract.outputs}
