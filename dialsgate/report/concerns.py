"""Which concern a verdict row belongs to: one table, read top to bottom, first match wins."""

from __future__ import annotations

#: (layer or None, check-name prefix, concern). A row matches when its layer equals the first
#: element (None: any layer) and its check name starts with the prefix ("" matches every check).
#: Parametrised names (``check_input_dims[BPix1]``) match by their prefix.
CONCERN_RULES: tuple[tuple[str | None, str, str], ...] = (
    ("server", "", "server"),
    ("parity", "", "versions"),
    (None, "check_serving_environment_matches_image", "versions"),
    (None, "check_model_file_loads_with_image_versions", "versions"),
    (None, "check_template_schema", "template"),
    (None, "check_datatypes_known", "template"),
    (None, "check_model_file_exists", "template"),
    (None, "check_handler_class_defined", "template"),
    (None, "check_key_in_outputs", "template"),
    (None, "check_flag_output_is_bool", "template"),
    (None, "check_metric_output_is_numeric", "template"),
    (None, "check_anomaly_threshold_finite", "template"),
    (None, "check_outputs_have_batch_axis", "template"),
    (None, "check_resources_plausible", "template"),
    (None, "check_image_has_profile", "template"),
    (None, "check_handler_answers_template_request", "signature"),
    (None, "check_output_matches_signature", "signature"),
    (None, "check_no_undeclared_outputs", "signature"),
    (None, "check_input_required", "signature"),
    (None, "check_input_dims", "signature"),
    (None, "check_input_datatype", "signature"),
    (None, "check_reference_batch_matches_template", "signature"),
    (None, "check_flattened_and_nested_agree", "signature"),
    (None, "check_outputs_in_request_order", "signature"),
    (None, "check_bad_request_refused", "robustness"),
    (None, "check_non_finite_counts_refused", "robustness"),
    (None, "check_empty_batch_answered", "robustness"),
    (None, "check_metadata_input_malformed_not_crashing", "robustness"),
    (None, "check_package_", "packaging"),
    (None, "check_model_settings_agree", "packaging"),
    (None, "check_pickle_globals_safe", "packaging"),
    (None, "check_pickle_globals_resolvable", "packaging"),
    (None, "check_imports_available_in_image", "packaging"),
    (None, "check_clean_interpreter_round_trip", "packaging"),
    (None, "check_python_version_compatible", "packaging"),
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
    """The concern of one verdict row; "other" when no rule matches."""
    for rule_layer, prefix, concern in CONCERN_RULES:
        if (rule_layer is None or rule_layer == layer) and check.startswith(prefix):
            return concern
    return "other"
