"""Template checks: the schema (dism-core) and dismcli's own build-time checks, plus the keys."""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path

from dism_core import Template
from dism_core.validation.utils import has_handler_class

from dialsgate.checks.base import CheckFailed, case, check
from dialsgate.contract.template import DTYPE_OF_DATATYPE, read_template
from dialsgate.limits import limit, shorten
from dialsgate.plainfiles import NotPlain, plain_kind, read_plain


@check(kind="failure", concern="template", runs_model_code=False)
def check_template_schema(subject) -> None:
    """The template loads with dism-core, the schema library dismcli itself uses."""

    try:
        # The document read with the gate's caps (size, aliases), then dism-core's own model.
        document = subject.contract.document or read_template(subject.contract.template_path)
        Template(**copy.deepcopy(document))
    except Exception as error:
        raise CheckFailed(f"{subject.contract.template_path} does not validate with dism-core: {error}") from None


@check(kind="failure", concern="template", runs_model_code=False)
def check_model_file_exists(subject) -> None:
    """dismcli build refuses a ModelUri that is not a file."""
    subject.require_plain_folder()
    if plain_kind(subject.contract.model_file) is not None:
        raise CheckFailed(f"ModelUri {shorten(subject.contract.model_file)} is not a file")


@check(kind="failure", concern="template", runs_model_code=False)
def check_handler_class_defined(subject) -> None:
    """dismcli build requires CodeUri/<module>.py to define ``class <Class>`` (its own regex)."""

    subject.require_plain_folder()
    contract = subject.contract
    if not contract.handler_class.isidentifier():
        # dism-core builds its regex from the name unescaped: dismcli build crashes on it (re.error).
        raise CheckFailed(
            f"Handler {shorten(contract.handler)}: {shorten(contract.handler_class)!r} is not a Python class name, so no "
            f"module defines it: MLServer cannot import it, and dismcli build's search for 'class {shorten(contract.handler_class)}' "
            "fails on it"
        )
    handler = f"Handler {shorten(contract.handler)}"
    if plain_kind(contract.handler_file) is not None:
        raise CheckFailed(f"{handler}: {shorten(contract.handler_file)} is not a file")
    try:
        source = read_plain(contract.handler_file, int(limit("source_file_bytes"))).decode("utf-8", errors="replace")
    except NotPlain as error:
        raise CheckFailed(f"{handler}: {error}") from None
    # dismcli's own test (dism-core's has_handler_class) on the bytes read here, never on the path.
    with tempfile.TemporaryDirectory(prefix="dialsgate-handler-") as scratch:
        copy = Path(scratch) / contract.handler_file.name
        copy.write_text(source, encoding="utf-8")
        defined = has_handler_class(copy, contract.handler_class)
    if not defined:
        raise CheckFailed(f"{handler}: no 'class {shorten(contract.handler_class)}' in {shorten(contract.handler_file)}")


@check(kind="failure", concern="template", runs_model_code=False)
def check_dims_within_limit(subject) -> None:
    """The gate builds sample data and requests from the Dims: one lumisection of every input holds
    at most DIALSGATE_MAX_ELEMENTS_PER_LS values (2,000,000 by default)."""
    largest = subject.contract.oversized_inputs()
    if largest:
        cap = int(limit("elements_per_lumisection"))
        raise CheckFailed(
            f"one lumisection of the inputs holds more than {cap:,} values (the gate's cap of elements per lumisection, "
            f"DIALSGATE_MAX_ELEMENTS_PER_LS): {'; '.join(largest)}. No sample data or request was built from these "
            "Dims; a monitoring element of DIALS is far smaller: check the Dims"
        )


@check(kind="failure", concern="template", runs_model_code=False)
def check_key_in_outputs(subject, key: str) -> None:
    """FlaggingKey and MetricKey must name outputs of the OutputSignature."""
    value = getattr(subject.contract, key)
    names = [sig.name for sig in subject.contract.outputs]
    if value not in names:
        raise CheckFailed(f"{key.title().replace('_', '')} {value!r} is not an output of the OutputSignature {names}")


@check(kind="failure", concern="template", runs_model_code=False)
def check_flag_output_is_bool(subject) -> None:
    """DIALS reads the FlaggingKey output as a boolean per lumisection."""
    contract = subject.contract
    names = {sig.name: sig for sig in contract.outputs}
    if contract.flagging_key in names and names[contract.flagging_key].datatype != "BOOL":
        raise CheckFailed(
            f"FlaggingKey output {contract.flagging_key!r} is {names[contract.flagging_key].datatype}, expected BOOL"
        )


NUMERIC_DATATYPES = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}


@check(kind="failure", concern="template", runs_model_code=False)
def check_metric_output_is_numeric(subject) -> None:
    """DIALS compares the MetricKey output with AnomalyThreshold: it must be a number."""
    contract = subject.contract
    names = {sig.name: sig for sig in contract.outputs}
    signature = names.get(contract.metric_key)
    if signature is not None and signature.datatype not in NUMERIC_DATATYPES:
        raise CheckFailed(
            f"MetricKey output {contract.metric_key!r} is {signature.datatype}, expected a numeric datatype (e.g. FP32)"
        )


@check(kind="failure", concern="template", runs_model_code=False)
def check_anomaly_threshold_finite(subject) -> None:
    """With BuiltinThreshold false, DIALS flags Metric > AnomalyThreshold: NaN or inf never works."""

    value = subject.contract.anomaly_threshold
    try:
        finite = value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        finite = False
    if not finite:
        raise CheckFailed(f"AnomalyThreshold {value!r} is not a finite number")


@check(kind="failure", concern="template", runs_model_code=False)
def check_outputs_have_batch_axis(subject) -> None:
    """One value per lumisection: every output's Dims start with the batch axis -1."""
    wrong = [f"{sig.name} {list(sig.dims)}" for sig in subject.contract.outputs if not sig.dims or sig.dims[0] != -1]
    if wrong:
        raise CheckFailed(f"outputs without a leading batch axis -1: {wrong}")


@check(kind="failure", concern="template", runs_model_code=False)
def check_datatypes_known(subject) -> None:
    """Every DataType of the template is a V2 datatype (BOOL, UINT8..UINT64, INT8..INT64, FP16..FP64, BYTES)."""
    unknown = subject.contract.unknown_datatypes()
    if unknown:
        raise CheckFailed(
            f"no such V2 datatype: {'; '.join(unknown)} (expected one of {', '.join(sorted(DTYPE_OF_DATATYPE))}, "
            "optionally prefixed TYPE_); the request checks cannot be generated until it is fixed"
        )


def cases(contract):
    found = [
        case(check_template_schema),
        case(check_datatypes_known),
        case(check_model_file_exists),
        case(check_handler_class_defined),
        case(check_dims_within_limit),
    ]
    found += [case(check_key_in_outputs, key, key=key) for key in ("flagging_key", "metric_key") if getattr(contract, key)]
    if contract.flagging_key:
        found.append(case(check_flag_output_is_bool))
    if contract.metric_key:
        found.append(case(check_metric_output_is_numeric))
    if not contract.builtin_threshold:
        found.append(case(check_anomaly_threshold_finite))
    found.append(case(check_outputs_have_batch_axis))
    return found
