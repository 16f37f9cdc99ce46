"""The template's ``Resources`` (Kubernetes requests and limits) read as numbers.

dism-core 1.5.1 (``dism_core.properties.isvc.resources``) declares, under an inference
service's ``Properties``::

    Resources:
      Requests: {cpu: "500m", memory: "1Gi"}     # each key optional, values are strings
      Limits:   {cpu: "2", memory: "2Gi"}        # (also "nvidia.com/gpu", not judged here)

Both ``Requests`` and ``Limits`` are optional; no ``Resources`` at all is the DIALS default.
pydantic ignores unknown keys there, so ``Memory: 2Gi`` (capital M) validates and is silently
dropped: :func:`declared_resources` reports such keys so the check can name them.

No dependency beyond the standard library: the server layer imports
:func:`declared_memory_limit_bytes` under the serving pins.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from dialsgate.contract.quantity import QuantityError, parse_quantity

SECTIONS = ("Requests", "Limits")
#: Keys dism-core's ResourceSpec knows ("nvidia.com/gpu" is its alias for gpu).
KNOWN_KEYS = ("cpu", "memory", "nvidia.com/gpu", "gpu")
JUDGED = ("cpu", "memory")


@dataclass(frozen=True)
class Declared:
    """One declared amount: ``Limits.memory = "2Gi"`` -> 2147483648 (None when unparsable)."""

    section: str  # Requests | Limits
    resource: str  # cpu | memory
    raw: object
    value: Decimal | None
    error: str | None = None

    def path(self, contract) -> str:
        return f"Resources.{contract.resource_key}.Properties.Resources.{self.section}.{self.resource}"


@dataclass(frozen=True)
class DeclaredResources:
    amounts: tuple[Declared, ...]
    #: Problems with the shape of the Resources block itself (unknown keys, not a mapping).
    shape_problems: tuple[str, ...]

    def get(self, section: str, resource: str) -> Declared | None:
        return next((a for a in self.amounts if a.section == section and a.resource == resource), None)


def declared_resources(contract) -> DeclaredResources:
    """Every cpu/memory amount under the resource's ``Properties.Resources``, parsed."""
    prefix = f"Resources.{contract.resource_key}.Properties.Resources"
    block = (contract.properties or {}).get("Resources")
    if block is None:
        return DeclaredResources((), ())
    if not isinstance(block, dict):
        return DeclaredResources((), (f"{prefix} is {block!r}, expected a mapping with Requests and/or Limits",))
    problems = [
        f"{prefix}.{key}: unknown key (dism-core knows {', '.join(SECTIONS)}; DIALS ignores it)"
        for key in block
        if key not in SECTIONS
    ]
    amounts = []
    for section in SECTIONS:
        spec = block.get(section)
        if spec is None:
            continue
        if not isinstance(spec, dict):
            problems.append(f"{prefix}.{section} is {spec!r}, expected a mapping with cpu and/or memory")
            continue
        for key in spec:
            if key not in KNOWN_KEYS:
                hint = next((k for k in JUDGED if k == str(key).lower()), None)
                problems.append(
                    f"{prefix}.{section}.{key}: unknown key, ignored by dism-core and DIALS"
                    + (f" (did you mean {hint!r}? keys are lower case)" if hint else f" (known: {', '.join(JUDGED)})")
                )
        for resource in JUDGED:
            if resource not in spec or spec[resource] is None:
                continue
            raw = spec[resource]
            try:
                amounts.append(Declared(section, resource, raw, parse_quantity(raw)))
            except QuantityError as error:
                amounts.append(Declared(section, resource, raw, None, str(error)))
    return DeclaredResources(tuple(amounts), tuple(problems))


def declared_memory_limit_bytes(contract) -> int | None:
    """``Limits.memory`` in bytes (rounded down), or None when the template declares none.

    Raises QuantityError when it is declared but is not a quantity (the fast layer's
    ``check_resources_plausible`` names that defect).
    """
    declared = declared_resources(contract).get("Limits", "memory")
    if declared is None:
        return None
    if declared.value is None:
        raise QuantityError(f"{declared.path(contract)}: {declared.error}")
    return int(declared.value)
