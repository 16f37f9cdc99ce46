"""Which concern a verdict row belongs to: the concern its check declares (``@check``), else a fallback table."""

from __future__ import annotations

from dialsgate.checks import check_of

#: Rows that are not a declared check (``@check`` in dialsgate.checks carries the concern of
#: every check): (layer or None, name prefix, concern), read top to bottom, first match wins.
#: Layer-level rows ("(layer)") and the server layer's own test functions are "server" there.
FALLBACK_RULES: tuple[tuple[str | None, str, str], ...] = (
    ("server", "", "server"),
    ("parity", "", "versions"),
)

#: Display order of the concerns (groups with failures still come first) and their headings.
CONCERNS: dict[str, str] = {
    "template": "Template: the DISM template's fields and files",
    "signature": "Signature: requests and answers as the template declares them",
    "robustness": "Robustness: bad, empty and malformed requests",
    "packaging": "Packaging: what dismcli package zips, pickles, imports, Python version",
    "versions": "Versions: the serving image's package versions",
    "server": "Server: MLServer in the serving image",
    "other": "Other rows (project tests, layer-level rows)",
}


def concern_of(layer: str, check: str) -> str:
    """The concern of one verdict row: its check's declared concern (any transport), else the
    fallback rules; "other" when nothing matches (project tests, layer rows outside the server)."""

    function = check_of(check)
    if function is not None:
        return function.dialsgate_concern
    for rule_layer, prefix, concern in FALLBACK_RULES:
        if (rule_layer is None or rule_layer == layer) and check.startswith(prefix):
            return concern
    return "other"


#: Rows that are not a declared check but rest on the folder's own code: (layer, name prefix).
#: The server layer's own tests ask the served MLServer, whose process runs the folder's handler
#: (loaded first, it can change anything MLServer answers: health, metadata, memory, answers).
FORGEABLE_RULES: tuple[tuple[str, str], ...] = (("server", "test_server_"),)


def forgeable(layer: str, check: str) -> bool:
    """Does the row rest on what the folder's own code did or answered (in the sandbox)? That
    code could tell it is being tested and answer otherwise: such a row is its word, not proof.
    A check says so where it is declared (``@check(runs_model_code=...)``), else FORGEABLE_RULES."""
    function = check_of(check)
    if function is not None:
        return function.dialsgate_runs_model_code
    return any(layer == rule_layer and check.startswith(prefix) for rule_layer, prefix in FORGEABLE_RULES)
