"""Where a verdict comes from: the gate's version, the serving image, the folder and model file it
judged, the batch it sent, strict or not, the author's known failures honoured or not. Written into verdict.json and the report so that a
verdict can be traced to exactly what was checked.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from dialsgate.container.engine import Engine, resolve_network_mode
from dialsgate.container.image import STANDIN_LABEL
from dialsgate.container.sandbox import HOME_SIZE, PIDS_LIMIT, TMP_SIZE
from dialsgate.container.worker import limits_for, mount_name
from dialsgate.environment.runtime import no_container_requested
from dialsgate.fingerprint import plain_file_sha256, tree_sha256
from dialsgate.limits import shorten

#: The distribution name of the gate (pyproject.toml [project].name).
DISTRIBUTION = "dialsgate"


def gate_version() -> str:
    """The installed distribution's version; from a checkout, pyproject.toml's."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        return f"{tomllib.loads(pyproject.read_text())['project']['version']} (checkout)"
    except (OSError, KeyError, ValueError):
        return "unknown"


def image_facts(image: str) -> dict:
    """The local image of that name: real or our stand-in, its id, and a stand-in's pins hash."""
    try:
        found = Engine.from_settings().image_inspect(image)
        if found is None:
            raise LookupError(f"no image {image} here")
    except Exception as error:  # no engine, no image: say so, the verdict is still written
        return {"name": image, "kind": "unknown", "why": f"{type(error).__name__}: {error}"}
    labels = (found.get("Config") or {}).get("Labels") or {}
    standin = STANDIN_LABEL in labels or any(key.endswith(".pins-sha256") for key in labels)
    facts = {"name": image, "kind": "stand-in" if standin else "real", "id": found.get("Id")}
    if found.get("RepoDigests"):
        facts["digests"] = list(found["RepoDigests"])
    pins = next((value for key, value in labels.items() if key.endswith(".pins-sha256")), None)
    if pins:
        facts["pins_sha256"] = pins
    return facts


def provenance(
    contract, *, strict: bool, reference_batch: Path | None, with_image: bool, ignore_known_failures: bool = False
) -> dict:
    """Everything a reader needs to know what this verdict judged (and how: strict, the author's
    known failures honoured or ignored)."""
    facts = {
        "dialsgate": gate_version(),
        "template": str(contract.template_path),
        "resource": contract.resource_key,
        "folder": str(contract.code_dir),
        "folder_sha256": tree_sha256(contract.code_dir),
        "model_file": str(contract.model_file),
        "model_file_sha256": plain_file_sha256(contract.model_file),
        "reference_batch": str(reference_batch) if reference_batch else None,
        "reference_batch_sha256": plain_file_sha256(reference_batch) if reference_batch else None,
        "strict": strict,
        "known_failures_ignored": ignore_known_failures,
    }
    facts["image"] = image_facts(contract.image) if with_image else {"name": contract.image, "kind": "not used"}
    if isinstance(facts["image"].get("name"), str):
        facts["image"]["name"] = shorten(facts["image"]["name"])  # the template's string, printed: capped
    facts["model_code"] = model_code_facts(contract)
    if with_image:
        facts["server_network"] = server_network()
    return facts


def model_code_facts(contract) -> dict:
    """Where the layers ran the folder's model code, and how it was confined."""
    if no_container_requested():
        return {"where": "host", "why": "--no-container"}
    memory, cpus, limits = limits_for(contract)
    ignored = limits_ignored()
    if ignored:
        limits = f"{limits}, NOT ENFORCED: {ignored}"
    return {
        "where": "worker container",
        "network": "none",
        "user": "the image's (uid 1000)",
        "mounts": {
            mount_name(contract): "the server folder (a copy), read-only",
            "/mnt/model": "the model file (a copy), read-only",
        },
        "scratch": "/scratch, in memory",
        "root_filesystem": f"read-only; writable only /scratch, /tmp ({TMP_SIZE}) and the image user's home ({HOME_SIZE}), in memory",
        "capabilities": "none (all dropped), no new privileges",
        "pids_limit": PIDS_LIMIT,
        "memory_bytes": memory,
        "cpus": cpus,
        "limits": limits,
    }


def limits_ignored() -> str | None:
    """Why the engine does not enforce a container's memory and CPU limits, or None."""
    try:
        return Engine.from_settings().ignores_limits()
    except Exception:  # no engine: nothing ran there
        return None


def server_network() -> str:
    """The server layer's network: "none" (the default: requests carried in by the engine),
    "host" (MLServer on 127.0.0.1, with the host's network) or "bridge" (ports published on
    127.0.0.1 only)."""
    try:
        return resolve_network_mode()
    except Exception as error:  # the verdict is still written
        return f"unknown ({type(error).__name__}: {error})"
