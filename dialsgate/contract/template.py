"""The deployment contract read from a DISM template (what DIALS will send and expect back).

Parsed with PyYAML only, so it also loads in the serving environment (pydantic 1, no dism-core);
the schema itself is validated with dism-core in the fast layer (``checks.template``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dialsgate.limits import limit, shorten
from dialsgate.plainfiles import NotPlain, inside, read_plain

MLSERVER_TYPE_PREFIX = "InferenceService::MLServer::"
#: A template is read only up to this many bytes (DISM templates are a few KB).
MAX_TEMPLATE_BYTES = 1 * 2**20
#: At most this many YAML aliases (``*name``) in a template: a few are normal, an alias bomb
#: ("billion laughs") nests thousands that expand to gigabytes when the document is built.
MAX_YAML_ALIASES = 50
#: What ``code_dir`` / ``model_file`` become when CodeUri / ModelUri is refused (outside the
#: template's folder, through a link): a path that names the refusal and holds nothing.
REFUSED = "(refused {key})"
#: At most this many YAML nodes once every alias is expanded (a DISM template has a few hundred):
#: a handful of aliases nested in one another can expand to millions.
MAX_YAML_EXPANDED_NODES = 100_000
MODEL_SETTINGS = "model-settings.json"
METADATA_SEPARATOR = "__"


#: numpy dtype name of each V2 datatype (BYTES travels as strings in JSON): the one datatype table.
DTYPE_OF_DATATYPE = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}  # fmt: skip


def normalise_datatype(datatype: str) -> str:
    name = str(datatype).upper()
    return name[len("TYPE_") :] if name.startswith("TYPE_") else name


@dataclass(frozen=True)
class Signature:
    name: str
    datatype: str  # V2 name, without TYPE_
    dims: tuple[int, ...]
    monitoring_element: str | None = None

    @property
    def per_ls_dims(self) -> tuple[int, ...]:
        """Dims after the batch axis."""
        return self.dims[1:]


@dataclass(frozen=True)
class Contract:
    template_path: Path
    resource_key: str
    name: str
    image: str | None
    handler: str
    code_dir: Path  # the folder MLServer loads (CodeUri, or a dismcli build folder)
    model_file: Path
    built: bool  # True when code_dir is a dismcli build folder (holds model-settings.json)
    builtin_threshold: bool
    flagging_key: str | None
    metric_key: str | None
    anomaly_threshold: float | None
    inputs: tuple[Signature, ...]
    outputs: tuple[Signature, ...]
    metadata_inputs: tuple[Signature, ...] = ()
    properties: dict = field(default_factory=dict, repr=False, compare=False)
    #: Why CodeUri / ModelUri were refused (outside the template's folder, a link on the way):
    #: then ``code_dir`` / ``model_file`` point at nothing (``REFUSED``); check_folder_plain_files fails.
    refused_paths: tuple[str, ...] = ()
    #: The whole template as read (once per run, with the gate's caps): the schema check and the
    #: offline build take it from here instead of reading the file again.
    document: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def handler_class(self) -> str:
        return self.handler.rsplit(".", 1)[1]

    @property
    def handler_file(self) -> Path:
        return self.code_dir / (self.handler_module.replace(".", "/") + ".py")

    def unknown_datatypes(self) -> list[str]:
        """Template fields whose DataType is no V2 datatype (dism-core refuses them too)."""
        fields = [("InputSignature", self.inputs), ("InputMetadata", self.metadata_inputs), ("OutputSignature", self.outputs)]
        return [
            f"{where}[{sig.name}].DataType {sig.datatype!r}"
            for where, signatures in fields
            for sig in signatures
            if sig.datatype not in DTYPE_OF_DATATYPE
        ]

    def elements_per_lumisection(self) -> dict[str, int]:
        """{input: values of one lumisection} for every input and metadata input (a variable axis as 1)."""
        return {sig.name: math.prod(max(1, d) for d in sig.per_ls_dims) for sig in self.inputs + self.metadata_inputs}

    def oversized_inputs(self) -> list[str]:
        """The largest inputs when one lumisection of all of them holds more values than the gate
        builds (``DIALSGATE_MAX_ELEMENTS_PER_LS``): no sample data or request is made from them."""
        sizes = self.elements_per_lumisection()
        if sum(sizes.values()) <= int(limit("elements_per_lumisection")):
            return []
        dims = {sig.name: list(sig.dims) for sig in self.inputs + self.metadata_inputs}
        largest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
        return [f"{shorten(name)} (Dims {shorten(dims[name])}: {size:,} values)" for name, size in largest]

    def output(self, name: str) -> Signature:
        return next(sig for sig in self.outputs if sig.name == name)

    def model_settings(self) -> dict:
        """model-settings.json as dismcli build writes it."""
        return model_settings(self.name, self.handler, self.model_file.name)


def model_settings(name: str, handler: str, model_file_name: str) -> dict:
    """The one writer of model-settings.json's content, as dismcli build writes it."""
    return {"name": name, "implementation": handler, "parameters": {"uri": model_file_name, "version": "0.1.0"}}


def _signatures(entries, with_me: bool) -> tuple[Signature, ...]:
    return tuple(
        Signature(
            name=str(entry["Name"]),
            datatype=normalise_datatype(entry["DataType"]),
            dims=tuple(int(d) for d in entry["Dims"]),
            monitoring_element=entry.get("MonitoringElement") if with_me else None,
        )
        for entry in entries or []
    )


class TemplateRefused(ValueError):
    """A template the gate does not read: over its size cap, an alias bomb, not a plain file, not YAML."""


#: libyaml's safe loader where PyYAML was built with it (ten times faster; the same documents),
#: else PyYAML's own.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: bytes | str, cap: int = MAX_TEMPLATE_BYTES) -> object:
    """A YAML document from a DISM template's text: at most ``cap`` bytes, ``MAX_YAML_ALIASES``
    aliases and ``MAX_YAML_EXPANDED_NODES`` nodes once its aliases are expanded. Composing is
    safe to finish first: an alias is the anchored node itself, so the node graph is no larger
    than the text; only constructing and using the document expands it."""
    if len(text) > cap:
        raise TemplateRefused(f"the template holds {len(text):,} bytes, above the {cap:,}-byte cap (a DISM template is a few KB)")
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        aliases = _alias_count(node)
        if aliases > MAX_YAML_ALIASES:
            raise TemplateRefused(
                f"more than {MAX_YAML_ALIASES} YAML aliases ({aliases}): a template needs few or none, "
                "and many nested aliases expand to gigabytes (an alias bomb); not read"
            )
        expanded = _expanded_size(node)
        if expanded > MAX_YAML_EXPANDED_NODES:
            raise TemplateRefused(
                f"its YAML aliases expand to more than {MAX_YAML_EXPANDED_NODES:,} nodes (an alias bomb); not read"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise TemplateRefused(f"not valid YAML: {str(error)[:300]}") from None
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _alias_count(root: yaml.Node) -> int:
    """How many times the document refers to a node it already holds: its aliases (an unanchored
    node is a new node each time it is written)."""
    seen = {id(root)}
    pending = [root]
    aliases = 0
    while pending:
        for child in _children(pending.pop()):
            if id(child) in seen:
                aliases += 1
            else:
                seen.add(id(child))
                pending.append(child)
    return aliases


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has with every alias expanded (an alias is the anchored node
    itself, so shared nodes count once per use); a node holding itself counts as too many."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            return MAX_YAML_EXPANDED_NODES + 1  # recursive: infinite once expanded
        open_nodes.add(key)
        total = 1
        for child in _children(node):
            total += size(child)
            if total > MAX_YAML_EXPANDED_NODES:
                break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def read_template(path: Path) -> dict:
    """The template's YAML, read as a plain file of at most ``MAX_TEMPLATE_BYTES``."""
    try:
        data = read_plain(Path(path), MAX_TEMPLATE_BYTES)
    except NotPlain as error:
        raise TemplateRefused(f"{path}: {error}") from None
    document = parse_yaml(data)
    if not isinstance(document, dict):
        raise TemplateRefused(f"{path}: the template is not a YAML mapping")
    return document


class UnsupportedResourceType(KeyError):
    """The resource is a DISM type the gate does not judge yet (Tritonserver)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def unsupported_message(key: str, resource_type: str) -> str:
    return (
        f"resource {key!r} is {resource_type}: dialsgate judges MLServer resources only "
        f"({MLSERVER_TYPE_PREFIX}SKLearn, ::XGBoost, ::LightGBM); Tritonserver resources are not supported yet, "
        "so this folder was not judged (no check ran)"
    )


def select_resource(template: dict, resource_key: str | None = None) -> tuple[str, dict]:
    resources = template.get("Resources") or {}
    mlserver = {key: value for key, value in resources.items() if str(value.get("Type", "")).startswith(MLSERVER_TYPE_PREFIX)}
    others = {key: str(value.get("Type", "")) for key, value in resources.items() if key not in mlserver}
    if resource_key is not None:
        if resource_key in others:
            raise UnsupportedResourceType(unsupported_message(resource_key, others[resource_key]))
        if resource_key not in mlserver:
            raise KeyError(f"resource {resource_key!r} is not an MLServer resource of the template; found {sorted(mlserver)}")
        return resource_key, mlserver[resource_key]
    if not mlserver and len(others) == 1:
        raise UnsupportedResourceType(unsupported_message(*next(iter(others.items()))))
    if len(mlserver) != 1:
        raise KeyError(f"the template has {len(mlserver)} MLServer resources {sorted(mlserver)}; name one with --resource")
    return next(iter(mlserver.items()))


def resource_types(template: dict) -> dict[str, str]:
    """{resource key: its DISM Type}, in the template's order (every resource, judged or not)."""
    resources = template.get("Resources") or {}
    if not isinstance(resources, dict):
        return {}
    return {str(key): str((value or {}).get("Type", "")) if isinstance(value, dict) else "" for key, value in resources.items()}


def load_contract(template_path: Path | str, build_dir: Path | str | None = None, resource_key: str | None = None) -> Contract:
    """Read the contract of one MLServer resource.

    ``build_dir``: a dismcli ``.dism-artifacts/build/<ResourceKey>`` folder; the checks then run
    on exactly those files (the ones ``dismcli package`` zips) instead of CodeUri/ModelUri.
    """
    template_path = Path(template_path).resolve()
    template = read_template(template_path)
    key, _ = select_resource(template, resource_key)
    return contract_of(template_path, template, key, build_dir)


def contract_of(template_path: Path, template: dict, key: str, build_dir: Path | str | None = None) -> Contract:
    """The contract of the MLServer resource ``key`` of a template already read."""
    template_path = Path(template_path).resolve()
    key, resource = select_resource(template, key)
    props = resource.get("Properties") or {}
    refused = []
    if build_dir is not None:
        code_dir = Path(build_dir).resolve()
        model_file = code_dir / Path(str(props["ModelUri"])).name
    else:
        # Inside the template's folder through no link (never resolved: a link is not followed).
        root = template_path.parent
        paths = {}
        for field_name in ("CodeUri", "ModelUri"):
            try:
                paths[field_name] = inside(root, str(props[field_name]))
            except NotPlain as error:
                refused.append(f"{field_name}: {error}")
                paths[field_name] = root / REFUSED.format(key=field_name)
        code_dir, model_file = paths["CodeUri"], paths["ModelUri"]
    metadata = tuple(
        Signature(f"{meta['Name']}{METADATA_SEPARATOR}{sig.name}", sig.datatype, sig.dims)
        for meta in props.get("InputMetadata") or []
        for sig in _signatures(meta.get("Attributes"), with_me=False)
    )
    return Contract(
        template_path=template_path,
        resource_key=key,
        name=str(props["Name"]),
        image=props.get("Image"),
        handler=str(props["Handler"]),
        code_dir=code_dir,
        model_file=model_file,
        built=build_dir is not None,
        builtin_threshold=bool(props.get("BuiltinThreshold")),
        flagging_key=props.get("FlaggingKey"),
        metric_key=props.get("MetricKey"),
        anomaly_threshold=props.get("AnomalyThreshold"),
        inputs=_signatures(props.get("InputSignature"), with_me=True),
        outputs=_signatures(props.get("OutputSignature"), with_me=False),
        metadata_inputs=metadata,
        properties=props,
        refused_paths=tuple(refused),
        document=template,
    )
