"""The model author's gate settings: ``dialsgate.toml`` beside the template (strict, known failures,
signed inputs, report pictures, the reference batch), and the reference batch beside it."""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def reference_batch_beside(contract) -> Path | None:
    """The one reference-batch lookup: ``reference_batch`` of the template's settings (relative to
    the template's folder), else tests/data/reference_batch.npz or reference_batch.npz beside the
    template, if present."""
    folder = contract.template_path.parent
    given = settings(contract).get("reference_batch")
    if given:
        return (folder / str(given)).resolve()
    for candidate in (folder / "tests" / "data" / "reference_batch.npz", folder / "reference_batch.npz"):
        if candidate.is_file():
            return candidate
    return None


SETTINGS_FILE = "dialsgate.toml"


def settings(contract) -> dict:
    """The author's gate settings for this template: ``dialsgate.toml`` beside it.

    Top-level keys (``strict``, ``[known_failures]``, ...) apply to every template of the folder;
    a ``[template."<file name>"]`` table adds to them for one template (its ``known_failures``
    merged with the shared ones), so two templates beside one file keep their own settings.
    """
    path = contract.template_path.parent / SETTINGS_FILE
    if not path.is_file():
        return {}
    with open(path, "rb") as stream:
        data = tomllib.load(stream)
    per_template = data.pop("template", {}).get(contract.template_path.name, {})
    merged = {**data, **per_template}
    merged["known_failures"] = {**data.get("known_failures", {}), **per_template.get("known_failures", {})}
    return merged


def known_failures(contract) -> dict[str, str]:
    """{check id: reason} from ``known_failures`` of the settings (``dialsgate.toml``).

    Declared by the model's author, never in dialsgate: they run as strict xfails (seen, and a
    fix is noticed) and the pre-deploy gate refuses any of them.
    """
    return {str(key): str(value) for key, value in settings(contract).get("known_failures", {}).items()}
