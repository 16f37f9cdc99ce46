"""One gate run: ``run(template, options) -> Verdict``, every check of every layer on every
resource of the template, in this process, without pytest.

The template is read once. Each MLServer resource gets one ``Subject`` (one worker container,
one served container, one build), and its checks run layer by layer (fast, parity, server) through
``checks.findings.judge``, the same road the pytest adapters take. A resource the gate cannot judge
(Tritonserver) is one failing ``not supported`` row, never left out. The facts the report shows
(the reference batch's answers) are recorded here, while the handler is loaded, so the report runs
no model code. Runs between ``dismcli build`` and ``dismcli package``: anything but passed, not
applicable or advice fails the gate, and so does a layer or a resource that was not judged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dialsgate.checks.findings import Finding, Outcome, judge
from dialsgate.checks.kinds import MLSERVER, ResourceKind, kind_of
from dialsgate.checks.subject import Subject
from dialsgate.contract.template import Contract, read_template, resource_types, unsupported_message
from dialsgate.environment.runtime import NO_CONTAINER_ENV
from dialsgate.gate.defaults import LAYERS
from dialsgate.report.facts import BatchAnswers, PackageListing, answer_batch, package_listing
from dialsgate.settings import known_failures, settings

#: A verdict row (the name the JUnit writer, verdict.json and older callers use).
Row = Finding

NO_CONTAINER_REASON = (
    "--no-container: model code was judged on this machine (a host Python of the image's version), outside the "
    "serving image: not its C libraries, user or read-only folder, and with this machine's network and files in "
    "reach. A pre-deploy gate needs the image: this verdict cannot pass"
)

#: The lines of the served container's log a failing server row carries as evidence.
LOG_TAIL_LINES = 200


@dataclass
class RunOptions:
    """What ``dialsgate check`` takes besides the template (the CLI's options, as values)."""

    layers: tuple[str, ...] = LAYERS
    build_dir: Path | None = None
    #: Judge only this resource (the verdict says the others were not judged).
    resource: str | None = None
    reference_batch: Path | None = None
    strict: bool = False
    ignore_known_failures: bool = False
    #: Check this running server instead of serving the folder (server layer).
    server_url: str | None = None
    no_container: bool = False
    fail_fast: bool = False
    #: Progress lines (one per layer and resource); model code's output never comes here.
    log: Callable[[str], None] = print


@dataclass
class Judged:
    """What the run learned of one MLServer resource besides its rows (the report's facts)."""

    contract: Contract
    answers: BatchAnswers | None = None
    reference_batch: Path | None = None
    #: What dismcli package would zip, listed from the build the checks judged.
    listing: PackageListing | None = None


@dataclass
class Verdict:
    rows: list[Finding]
    #: {resource key: what was judged of it}, MLServer resources only, in the template's order.
    judged: dict[str, Judged] = field(default_factory=dict)
    #: Every resource of the template: {key: DISM Type}.
    resources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.judged is None:
            self.judged = {}
        elif isinstance(self.judged, Contract):  # Verdict(rows, contract): one resource
            self.judged = {self.judged.resource_key: Judged(self.judged)}

    @property
    def contract(self) -> Contract | None:
        """The first judged resource's contract (None: none could be read)."""
        return next((found.contract for found in self.judged.values()), None)

    @property
    def contracts(self) -> list[Contract]:
        return [found.contract for found in self.judged.values()]

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row.passed for row in self.rows)

    def failures(self) -> list[Finding]:
        return [row for row in self.rows if not row.passed]


def judge_layer(
    layer: str,
    subject: Subject,
    resource: str,
    strict: bool,
    known: dict[str, str],
    kind: ResourceKind = MLSERVER,
) -> list[Finding]:
    """Every case of ``layer`` on ``subject``; a failing server row carries the container's log.
    With ``subject.serve_when_loaded`` (the server layer follows), serving starts as soon as it
    can be: from the early thread, else after the row whose check loaded the handler."""
    rows = []
    for case in kind.cases(layer, subject.contract):
        mark = subject.served_log_mark() if layer == "server" else None
        row = judge(case, subject, layer=layer, resource=resource, strict=strict, known=known)
        if subject.serve_when_loaded:
            subject.serve_in_background()  # from the moment the handler has loaded
        if not row.passed and mark is not None:
            row.evidence = "\n".join(filter(None, [row.evidence, subject.served_log_since(mark, LOG_TAIL_LINES)]))
        rows.append(row)
    return rows


def run(template: Path | str, options: RunOptions | None = None) -> Verdict:
    """Judge every resource of ``template`` as ``options`` say; one verdict for all of them."""
    options = options or RunOptions()
    unknown = sorted(set(options.layers) - set(LAYERS))
    if unknown:
        raise ValueError(f"unknown layers {unknown}; choose from {LAYERS}")
    template = Path(template).resolve()
    try:
        document = read_template(template)
    except Exception as error:
        return Verdict([Row("gate", "load_contract", Outcome.ERROR, f"{template}: {type(error).__name__}: {error}")])
    types = resource_types(document)
    verdict = Verdict([], resources=types)
    if not types:
        verdict.rows.append(Row("gate", "load_contract", Outcome.FAILED, f"{template}: the template has no Resources"))
        return verdict
    if options.resource is not None and options.resource not in types:
        verdict.rows.append(
            Row("gate", "load_contract", Outcome.ERROR, f"--resource {options.resource!r}: the template's resources are {sorted(types)}")
        )  # fmt: skip
        return verdict
    if options.no_container:
        verdict.rows.append(Row("gate", "model_code_in_serving_image", Outcome.FAILED, NO_CONTAINER_REASON))
    mlserver = [key for key, kind in types.items() if kind_of(kind) is not None]
    if options.build_dir is not None and options.resource is None and len(mlserver) > 1:
        verdict.rows.append(
            Row("gate", "load_contract", Outcome.ERROR, "--build-dir is one resource's build folder: name it with --resource")
        )
        return verdict
    for key, kind in types.items():
        if options.resource is not None and key != options.resource:
            verdict.rows.append(
                Row("gate", "resource_judged", Outcome.NOT_RUN, f"--resource {options.resource}: resource {key!r} ({kind}) "
                    "was not judged; the gate passes a template only when every resource is judged",
                    resource=key, root="--resource")
            )  # fmt: skip
            continue
        judged_as = kind_of(kind)
        if judged_as is None:
            verdict.rows.append(
                Row("gate", "resource_type_supported", Outcome.NOT_SUPPORTED, unsupported_message(key, kind), resource=key)
            )
            continue
        verdict.rows += _judge_resource(template, document, key, judged_as, options, verdict)
        if options.fail_fast and not all(row.passed for row in verdict.rows):
            break
    skipped = [layer for layer in LAYERS if layer not in options.layers]
    verdict.rows += [Row(layer, "(layer)", Outcome.NOT_RUN, "the gate needs every layer", root="--layers") for layer in skipped]
    return verdict


def _judge_resource(
    template: Path, document: dict, key: str, kind: ResourceKind, options: RunOptions, verdict: Verdict
) -> list[Finding]:
    try:
        contract = kind.contract(template, document, key, options.build_dir)
    except Exception as error:
        return [Row("gate", "load_contract", Outcome.ERROR, f"{template}: {type(error).__name__}: {error}", resource=key)]
    try:
        strict = bool(options.strict or settings(contract).get("strict", False))
        known = {} if options.ignore_known_failures else known_failures(contract)
    except Exception as error:  # a dialsgate.toml that is no TOML: the template checks name it
        strict, known = options.strict, {}
        options.log(f"resource {key}: dialsgate.toml not read ({type(error).__name__}: {error})")
    judged = verdict.judged.setdefault(key, Judged(contract))
    subject = kind.subject(contract, options.reference_batch, options.server_url)
    subject.no_container = options.no_container or subject.no_container
    subject.serve_when_loaded = "server" in options.layers
    # The worker container and the checks' fresh-process questions, made while the static checks run.
    subject.ask_early(lambda made: kind.early(made, options.layers))
    rows: list[Finding] = []
    try:
        for layer in options.layers:
            started = time.perf_counter()
            layer_rows = judge_layer(layer, subject, key, strict, known, kind=kind)
            if not layer_rows:
                layer_rows = [Row(layer, "(layer)", Outcome.FAILED, "no check ran in this layer", resource=key)]
            rows += layer_rows
            failed = sum(not row.passed for row in layer_rows)
            options.log(f"resource {key}: layer {layer}: {len(layer_rows)} rows, {failed} not passed, "
                        f"{time.perf_counter() - started:.1f} s")  # fmt: skip
            if options.fail_fast and failed:
                rest = options.layers[options.layers.index(layer) + 1 :]
                rows += [Row(other, "(layer)", Outcome.NOT_RUN, "--fail-fast after a failing layer", resource=key,
                             root="--fail-fast") for other in rest]  # fmt: skip
                break
        judged.reference_batch = subject.reference_batch_used
        judged.answers = _recorded_answers(subject)
        judged.listing = _recorded_listing(subject)
    finally:
        subject.close()
    return rows


def _recorded_answers(subject: Subject) -> BatchAnswers | None:
    """The reference batch's answers, for the report, from the handler already loaded (never a
    second load); None when there is no reference batch or the handler never loaded."""
    batch = subject.reference_batch_used
    if batch is None or subject.__dict__.get("handler_load", (None, None))[0] is None:
        return None
    try:
        return answer_batch(subject.contract, batch, handler=subject.handler_load[0])
    except Exception as error:  # the report illustrates the verdict; it never changes it
        return BatchAnswers(path=batch, arrays={}, n_ls=0, error=f"{type(error).__name__}: {error}")


def _recorded_listing(subject: Subject) -> PackageListing:
    """The package listing of the build the checks judged (never a second build)."""
    if "_package_folder" not in subject.__dict__:
        return PackageListing(folder=None, origin="", files=[], error="no build was made in this run (see the verdict)")
    return package_listing(subject.contract, folder=subject.package_folder)


def options_from_args(args, extra: list[str]) -> RunOptions:
    """``dialsgate check``'s parsed arguments as RunOptions."""
    layers = tuple(layer.strip() for layer in args.layers.split(",") if layer.strip())
    server_url = next((arg.split("=", 1)[1] for arg in extra if arg.startswith("--dials-server-url=")), None)
    return RunOptions(
        layers=layers,
        build_dir=args.build_dir.resolve() if args.build_dir is not None else None,
        resource=args.resource,
        reference_batch=args.reference_batch.resolve() if args.reference_batch is not None else None,
        strict=bool(args.strict),
        ignore_known_failures=bool(getattr(args, "ignore_known_failures", False)),
        server_url=getattr(args, "server_url", None) or server_url,
        no_container=bool(getattr(args, "no_container", False)),
        fail_fast=bool(args.fail_fast),
        log=lambda line: print(f"=== gate: {line}", flush=True),
    )


def run_gate(args, extra: list[str]) -> Verdict:
    """Run the gate as ``dialsgate check``'s arguments say."""
    try:
        options = options_from_args(args, extra)
        if options.no_container:
            os.environ[NO_CONTAINER_ENV] = "1"  # the report's facts and any worker process inherit it
        return run(args.template, options)
    except ValueError as error:
        raise SystemExit(str(error)) from None
