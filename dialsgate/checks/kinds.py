"""Resource kinds: what the gate needs to know of one DISM resource type to judge it.

A kind says how its resource is read from the template (``contract``), how its folder is built,
served, loaded and called (``subject``: the ``Subject`` holding its worker and served container)
and which checks judge it in each layer (``cases``). The runner asks ``kind_of`` for every resource
of a template; a type no kind claims gets one ``not supported`` row. MLServer is the one kind today.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dialsgate.checks import early_questions, fast_checks, parity_checks, server_checks
from dialsgate.checks.base import CheckCase
from dialsgate.checks.subject import Subject, make_subject
from dialsgate.contract.template import MLSERVER_TYPE_PREFIX, Contract, contract_of


@dataclass(frozen=True)
class ResourceKind:
    name: str
    #: The DISM ``Type`` values it judges start with this (``InferenceService::MLServer::``).
    type_prefix: str
    #: (template path, template document, resource key, build folder or None) -> Contract
    contract: Callable[[Path, dict, str, Path | None], Contract]
    #: (contract, reference batch or None, server URL or None) -> the Subject its checks look at
    subject: Callable[[Contract, Path | None, str | None], Subject]
    #: {layer: contract -> its check cases}
    layers: dict[str, Callable[[Contract], list[CheckCase]]]
    #: (subject, layers) -> the fresh-process questions those layers' checks will ask (asked early)
    early: Callable[[Subject, tuple[str, ...]], list] = lambda subject, layers: []

    def cases(self, layer: str, contract: Contract) -> list[CheckCase]:
        return self.layers[layer](contract)


MLSERVER = ResourceKind(
    name="MLServer",
    type_prefix=MLSERVER_TYPE_PREFIX,
    contract=contract_of,
    subject=make_subject,
    layers={"fast": fast_checks, "parity": parity_checks, "server": server_checks},
    early=early_questions,
)

#: Every kind the gate judges, asked in order.
KINDS: tuple[ResourceKind, ...] = (MLSERVER,)


def kind_of(resource_type: str) -> ResourceKind | None:
    """The kind that judges a DISM resource ``Type`` (None: the gate cannot judge it yet)."""
    return next((kind for kind in KINDS if str(resource_type).startswith(kind.type_prefix)), None)
