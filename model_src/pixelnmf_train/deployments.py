"""The deployments built from the one model package: which layers, metadata inputs and filters.

Each deployment has its own template, server folder and joblib; the filter definitions and
thresholds below are written into the joblib as model parameters (data, not code).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelnmf.geometry import BPIX_LAYERS, LayerGeometry

#: The OMS lumisection DCS bits that must all be true in the 2025F production model.
DCS_BITS = ("cms_active", "beams_stable", "bpix_ready", "fpix_ready", "tibtid_ready", "tob_ready", "tecp_ready", "tecm_ready")
LUMISECTION_INFO = "oms_lumisection_info"
HLT_ZEROBIAS = "hlt_zerobias"

#: V2 inputs DIALS sends for the 2025F template's InputMetadata: "<Name>__<Attribute>" -> datatype.
METADATA_2025F = {
    f"{LUMISECTION_INFO}__run_number": "INT32",
    f"{LUMISECTION_INFO}__lumisection_number": "INT32",
    f"{LUMISECTION_INFO}__pileup": "FP32",
    **{f"{LUMISECTION_INFO}__{bit}": "BOOL" for bit in DCS_BITS},
    f"{HLT_ZEROBIAS}__rate": "FP32",
}
MIN_PILEUP = 25.0
MIN_ZEROBIAS_RATE = 5.0
FILTERS_2025F = (
    *({"input": f"{LUMISECTION_INFO}__{bit}", "operator": "==", "value": True} for bit in DCS_BITS),
    {"input": f"{LUMISECTION_INFO}__pileup", "operator": ">", "value": MIN_PILEUP},
    {"input": f"{HLT_ZEROBIAS}__rate", "operator": ">", "value": MIN_ZEROBIAS_RATE},
)


@dataclass(frozen=True)
class Deployment:
    name: str
    layers: tuple[LayerGeometry, ...]
    output: str  # the joblib, relative to the repository
    template: str
    metadata_inputs: dict = field(default_factory=dict)
    filters: tuple = ()

    @property
    def layer_names(self) -> list[str]:
        return [g.name for g in self.layers]

    @property
    def model_parameters(self) -> dict:
        return {"metadata_inputs": dict(self.metadata_inputs), "filters": tuple(dict(f) for f in self.filters)}


DEPLOYMENTS = {
    # The four-layer model as first deployed (template.yaml).
    "four-layer": Deployment("four-layer", BPIX_LAYERS, "models/pixelnmf.joblib", "template.yaml"),
    # The production model since era 2025F: BPix1 dropped, OMS filters (template-2025f.yaml).
    "2025f": Deployment(
        "2025f", BPIX_LAYERS[1:], "models/pixelnmf-2025f.joblib", "template-2025f.yaml", METADATA_2025F, FILTERS_2025F
    ),
}
