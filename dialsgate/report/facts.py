"""Everything the report shows, as plain data (dataclasses, lists, strings): no HTML here.

The pieces: the reference batch answered by the handler, the gate's verdict grouped by concern
(:mod:`.concerns`), the serving pins and the image as its profile describes it, what the engine
says about the local image, and what ``dismcli package`` would zip. :func:`dialsgate.report.gather_facts` puts them (and the pictures of the
hooks, :mod:`.hooks`) into one :class:`ReportFacts`; :mod:`.render` turns that into HTML.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dialsgate.checks import ADVICE, PASSING_RESULTS
from dialsgate.checks.package import package_files
from dialsgate.checks.subject import Subject
from dialsgate.container.engine import Engine
from dialsgate.contract.build import build
from dialsgate.contract.template import Contract
from dialsgate.environment.profiles import ImageProfile, UnsupportedImage, profile_for_image, read_pins
from dialsgate.fingerprint import file_sha256, plain_file_sha256
from dialsgate.limits import shorten
from dialsgate.protocol import v2
from dialsgate.report.concerns import CONCERNS, concern_of, forgeable
from dialsgate.settings import reference_batch_beside

#: Serving packages shown, in this order (names as in the profile's core.txt, normalised).
SERVING_PACKAGES = ("numpy", "scikit-learn", "joblib", "scipy", "mlserver", "mlserver-sklearn", "pydantic")
#: At most this many lumisections are offered to the picture hooks (the clean one included).
MAX_PICTURES = 24
ENGINE_TIMEOUT_S = 5.0


def fmt_flag(value) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def fmt_size(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return str(n_bytes)


# -- reference batch through the handler ------------------------------------------------------
@dataclass
class BatchAnswers:
    """The handler's answers on the reference batch, with the optional labels of the .npz."""

    path: Path
    arrays: dict[str, np.ndarray]
    n_ls: int
    kind: np.ndarray | None = None
    expected: np.ndarray | None = None
    flag: np.ndarray | None = None
    metric: np.ndarray | None = None
    error: str | None = None
    flag_rule: str = ""


def default_reference_batch(contract: Contract) -> Path | None:
    """tests/data/reference_batch.npz or reference_batch.npz beside the template, if present."""

    return reference_batch_beside(contract)


def _optional_labels(path: Path, n_ls: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    archive = v2.read_npz(path, ["kind", "expected_flag"])  # plain, capped, no pickle
    kind, expected = archive.get("kind"), archive.get("expected_flag")
    kind = np.asarray(kind).astype(str) if kind is not None and len(kind) == n_ls else None
    expected = np.asarray(expected).astype(bool) if expected is not None and len(expected) == n_ls else None
    return kind, expected


def answer_batch(contract: Contract, path: Path, handler=None) -> BatchAnswers:
    """Send the batch as DIALS would (flattened V2 request) to the handler in its worker container
    (the serving image): ``handler``, already loaded by the gate's run, else one loaded here."""

    try:
        arrays = v2.reference_arrays(path, contract)
    except (OSError, KeyError, ValueError) as error:
        return BatchAnswers(path=path, arrays={}, n_ls=0, error=f"cannot read the reference batch: {error}")
    n_ls = len(next(iter(arrays.values()))) if arrays else 0
    kind, expected = _optional_labels(path, n_ls)
    answers = BatchAnswers(path=path, arrays=arrays, n_ls=n_ls, kind=kind, expected=expected)
    body = v2.request_body(contract, arrays, flatten=True, request_id="dialsgate-report")
    if handler is not None:
        outcome = handler.predict(body)
    else:
        subject = Subject(contract, arrays)
        try:
            try:
                loaded = subject.handler
            except Exception as error:  # a handler that does not load is the first thing to report
                answers.error = f"the handler {contract.handler} did not load from {contract.code_dir}: {error}"
                return answers
            outcome = loaded.predict(body)
        finally:
            subject.close()
    if outcome.response is None:
        answers.error = f"the handler refused the reference batch (HTTP {outcome.status}): {outcome.error}"
        return answers
    outputs = v2.outputs_by_name(outcome.response)
    if contract.metric_key and contract.metric_key in outputs:
        answers.metric = np.asarray(outputs[contract.metric_key], dtype=np.float64).reshape(-1)
    if contract.builtin_threshold and contract.flagging_key in outputs:
        answers.flag = np.asarray(outputs[contract.flagging_key]).astype(bool).reshape(-1)
        answers.flag_rule = f"{contract.flagging_key} as answered (BuiltinThreshold: true)"
    elif not contract.builtin_threshold and answers.metric is not None and contract.anomaly_threshold is not None:
        answers.flag = answers.metric > float(contract.anomaly_threshold)
        answers.flag_rule = f"{contract.metric_key} > AnomalyThreshold {contract.anomaly_threshold} (BuiltinThreshold: false)"
    else:
        answers.error = f"the response lacks the flagging output: got {sorted(outputs)}"
    for name, values in (("flag", answers.flag), ("metric", answers.metric)):
        if values is not None and len(values) != n_ls:
            answers.error = f"the handler answered {len(values)} {name} values for {n_ls} lumisections"
    return answers


def picture_indices(answers: BatchAnswers, limit: int = MAX_PICTURES) -> tuple[list[int], int | None, int]:
    """(flagged or missed LS, the clean LS, how many were left out by the limit)."""
    if answers.flag is None:
        return [], None, 0
    interesting = answers.flag.copy()
    if answers.expected is not None:
        interesting |= answers.expected  # a missed anomaly deserves a picture too
    chosen = [int(i) for i in np.flatnonzero(interesting)]
    left_out = max(0, len(chosen) - (limit - 1))
    chosen = chosen[: limit - 1]
    quiet = ~interesting
    candidates = (
        np.flatnonzero(quiet & (np.char.find(answers.kind, "clean") >= 0)) if answers.kind is not None else np.array([], int)
    )
    if not len(candidates):
        candidates = np.flatnonzero(quiet)
    clean = int(candidates[0]) if len(candidates) else None
    return chosen, clean, left_out


# -- package, pins, image ---------------------------------------------------------------------
@dataclass
class PackageListing:
    folder: Path | None
    origin: str
    files: list[tuple[str, int, str]]  # relative path, bytes, sha256
    error: str | None = None


def package_listing(contract: Contract, folder: Path | None = None) -> PackageListing:
    """What dismcli package would zip: ``folder`` (the build the gate's run judged), the build
    folder given, or an offline build made for the purpose."""

    temp = None
    try:
        if folder is not None:
            origin = "the build folder given (--build-dir)" if contract.built else "the offline build the gate's checks judged"
        elif contract.built:
            folder, origin = contract.code_dir, "the build folder given (--build-dir)"
        else:
            temp = Path(tempfile.mkdtemp(prefix="dialsgate-report-build-"))
            build(contract.template_path, temp / "build")
            folder, origin = (
                temp / "build" / contract.resource_key,
                "an offline build (dialsgate build) made for this report",
            )
        files = [(path.as_posix(), (folder / path).stat().st_size, file_sha256(folder / path)) for path in package_files(folder)]
        return PackageListing(folder=None if temp else folder, origin=origin, files=files)
    except Exception as error:  # shown in the report; the rest of the report is still useful
        return PackageListing(folder=None, origin="", files=[], error=f"{type(error).__name__}: {error}")
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def serving_pins(pins_file: Path) -> dict[str, str]:

    return read_pins(pins_file) if pins_file.is_file() else {}


def python_note(profile: ImageProfile) -> str:
    """The image's Python, in the real image and in our stand-in: from the image profile."""
    major, minor = profile.python_minor
    origin = f" ({profile.python_origin})" if profile.python_origin else ""
    return (
        f"Python {profile.python}{origin} in the real {profile.shortest_image} image; "
        f"Python {major}.{minor} (this machine's {major}.{minor} copied into {profile.standin_system}) in the local "
        "stand-in built by dialsgate/container/build-standin-image.sh"
    )


def local_image(image: str | None, timeout: float = ENGINE_TIMEOUT_S) -> dict:
    """The engine's inspection of the contract's image; {'error': ...} on any failure."""
    if not image:
        return {"error": "the template names no Image"}
    try:
        found = Engine.from_settings().image_inspect(image, timeout=timeout)
    except Exception as error:  # no engine, no answer, an unreadable one: said in the report
        return {"error": f"{type(error).__name__}: {error}"}
    if found is None:
        return {"error": "not available locally"}
    config = found.get("Config") or {}
    return {
        "id": found.get("Id"),
        "tags": found.get("RepoTags") or [],
        "created": found.get("Created"),
        "comment": found.get("Comment") or "",
        "size": found.get("Size"),
        "user": config.get("User") or "",
        "labels": config.get("Labels") or {},
    }


# -- the facts the page shows -----------------------------------------------------------------
@dataclass
class VerdictRow:
    layer: str
    check: str
    result: str
    reason: str
    concern: str
    forgeable: bool = False  # rests on the folder's own code, which could forge it (concerns.forgeable)

    @property
    def passed(self) -> bool:
        """Passed or not applicable (advice rows are apart: they pass the gate, shown with their reasons)."""
        return self.result in PASSING_RESULTS

    @property
    def advice(self) -> bool:
        return self.result == ADVICE


@dataclass
class ConcernGroup:
    concern: str
    title: str
    failing: list[VerdictRow]  # rows that fail the gate, in the gate's order
    passed: list[VerdictRow]
    advice: list[VerdictRow] = field(default_factory=list)  # advice rows: pass the gate, shown with their reasons


@dataclass
class Verdict:
    given: bool
    passed: bool = False
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # result -> rows, in order of appearance
    groups: list[ConcernGroup] = field(default_factory=list)  # groups with failures first
    forgeable: int = 0  # rows that rest on the folder's own code


def verdict_facts(verdict_rows) -> Verdict:
    """The gate's rows grouped by concern: groups with a failing row first, failing rows first in each."""
    if not verdict_rows:
        return Verdict(given=False)
    rows = []
    for entry in verdict_rows:
        layer, check = str(entry.get("layer", "")), str(entry.get("check", ""))
        rows.append(
            VerdictRow(
                layer,
                check,
                str(entry.get("result", "")),
                str(entry.get("reason", "") or ""),
                concern_of(layer, check),
                # verdict.json says it; an older one without the field: what the check declares
                bool(entry.get("forgeable", forgeable(layer, check))),
            )
        )
    groups = []
    for concern, title in CONCERNS.items():
        members = [row for row in rows if row.concern == concern]
        if members:
            groups.append(
                ConcernGroup(
                    concern,
                    title,
                    [r for r in members if not (r.passed or r.advice)],
                    [r for r in members if r.passed],
                    [r for r in members if r.advice],
                )
            )
    groups.sort(key=lambda group: not group.failing)  # stable: the concerns' order within each half
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.result] = counts.get(row.result, 0) + 1
    return Verdict(
        given=True,
        passed=all(row.passed or row.advice for row in rows),
        total=len(rows),
        counts=counts,
        groups=groups,
        forgeable=sum(row.forgeable for row in rows),
    )


@dataclass
class LSRow:
    index: int
    kind: str
    expected: str  # yes / no / n/a
    flag: str
    metric: str
    match: str  # yes / NO / n/a
    flagged: bool
    mismatch: bool
    picture: str | None = None  # the anchor of its picture, when one shows it


@dataclass
class KindRow:
    kind: str
    count: int
    flagged: int
    expected: int | str
    matching: int | str
    mismatch: bool


@dataclass
class BatchFacts:
    path: str
    n_ls: int
    handler: str
    code_dir: str
    flagging_key: str
    metric_key: str
    error: str | None = None
    flag_rule: str = ""
    labelled: bool = False
    matches: int | None = None
    kinds: list[KindRow] = field(default_factory=list)
    rows: list[LSRow] = field(default_factory=list)


def batch_facts(contract: Contract, answers: BatchAnswers) -> BatchFacts:
    facts = BatchFacts(path=str(answers.path), n_ls=answers.n_ls, handler=contract.handler, code_dir=str(contract.code_dir),
                       flagging_key=contract.flagging_key or "flag", metric_key=contract.metric_key or "")  # fmt: skip
    if answers.error:
        facts.error = answers.error
        return facts
    facts.flag_rule = answers.flag_rule
    facts.labelled = answers.expected is not None
    if facts.labelled:
        facts.matches = int((answers.flag == answers.expected).sum())
    if answers.kind is not None:
        for kind in dict.fromkeys(answers.kind.tolist()):
            members = answers.kind == kind
            count = int(members.sum())
            expected = int(answers.expected[members].sum()) if facts.labelled else "n/a"
            matching = int((answers.flag[members] == answers.expected[members]).sum()) if facts.labelled else "n/a"
            facts.kinds.append(
                KindRow(kind, count, int(answers.flag[members].sum()), expected, matching, facts.labelled and matching != count)
            )
    for i in range(answers.n_ls):
        expected = None if answers.expected is None else bool(answers.expected[i])
        flag = bool(answers.flag[i])
        facts.rows.append(
            LSRow(
                index=i,
                kind=str(answers.kind[i]) if answers.kind is not None else "",
                expected=fmt_flag(expected),
                flag=fmt_flag(flag),
                metric=f"{answers.metric[i]:g}" if answers.metric is not None else "n/a",
                match="n/a" if expected is None else ("yes" if expected == flag else "NO"),
                flagged=flag,
                mismatch=expected is not None and expected != flag,
            )
        )
    return facts


@dataclass
class Picture:
    src: str  # relative to index.html
    caption: str
    anchor: str
    ls: int | None = None


@dataclass
class PictureSet:
    """What one hook answered: pictures and notes, or the sentence saying why it has none."""

    hook: str
    pictures: list[Picture] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sentence: str | None = None


@dataclass
class PictureFacts:
    sets: list[PictureSet] = field(default_factory=list)
    sentence: str | None = None  # why there are no model pictures at all
    notes: list[str] = field(default_factory=list)


@dataclass
class ServingFacts:
    pins_file: str
    packages: list[tuple[str, str]]
    image_name: str
    image_error: str | None = None
    image: list[tuple[str, str]] = field(default_factory=list)  # (fact, value)
    image_id: str = ""
    labels: list[tuple[str, str]] = field(default_factory=list)


def serving_facts(
    contract: Contract, image: dict, profile: ImageProfile | None = None, pins_file: Path | None = None
) -> ServingFacts:
    """The serving image as its profile describes it (``profile``: the contract's image's), and
    the local image as the engine does (``image``, :func:`local_image`)."""
    if profile is None:
        try:
            profile = profile_for_image(contract.image)
        except UnsupportedImage:
            profile = None
    pins_file = pins_file or (profile.core_file if profile is not None else None)
    pins = serving_pins(pins_file) if pins_file is not None else {}
    packages = [(name, pins.get(name, "not pinned")) for name in SERVING_PACKAGES]
    packages.append(("python", python_note(profile) if profile is not None else "unknown: no image profile for this image"))
    facts = ServingFacts(
        pins_file=str(pins_file or "(no image profile)"), packages=packages, image_name=contract.image or "(none)"
    )
    if "error" in image:
        facts.image_error = image["error"]
        return facts
    stand_in = any(key.endswith("pins-sha256") for key in image["labels"]) or "stand-in" in image["comment"]
    facts.image_id = str(image["id"])
    facts.image = [
        ("tags", ", ".join(image["tags"]) or "none"),
        ("created", str(image["created"])),
        ("size", fmt_size(image["size"])),
        ("user", image["user"] or "(image default)"),
        ("comment", image["comment"] or "-"),
        ("which", which_image(stand_in, profile)),
    ]
    facts.labels = [(str(k), str(v)) for k, v in sorted(image["labels"].items())]
    return facts


def which_image(stand_in: bool, profile: ImageProfile | None) -> str:
    """Which image the local one is, with its system and Python as its profile has them."""
    if profile is None:
        return "the local stand-in" if stand_in else "not marked as a stand-in"
    major, minor = profile.python_minor
    if stand_in:
        return f"the local stand-in ({profile.standin_system}, Python {major}.{minor}, MLServer {profile.server_version})"
    return f"not marked as a stand-in (the real image: Python {profile.python}, MLServer {profile.server_version})"


@dataclass
class PackageFacts:
    model_file: str
    model_sha256: str | None
    listing: PackageListing
    total_size: str = ""


@dataclass
class ReportFacts:
    name: str
    header: list[tuple[str, str, bool]]  # (label, value, shown as code)
    generated: str
    verdict: Verdict
    batch: BatchFacts | None
    pictures: PictureFacts
    serving: ServingFacts
    package: PackageFacts
    elapsed_s: float = 0.0
    provenance: list[tuple[str, str, bool]] = field(default_factory=list)  # where the verdict comes from


def provenance_facts(origin: dict | None) -> list[tuple[str, str, bool]]:
    """The verdict's provenance (dialsgate.provenance) as (label, value, shown as code) rows."""
    if not origin:
        return []
    image = origin.get("image") or {}
    image_text = f"{image.get('name')} ({image.get('kind')})"
    for key in ("id", "pins_sha256"):
        if image.get(key):
            image_text += f", {key.replace('_', ' ')} {image[key]}"
    rows = [
        ("dialsgate", str(origin.get("dialsgate")), False),
        ("serving image", image_text, True),
        ("server folder sha256", str(origin.get("folder_sha256")), True),
        ("model file sha256", str(origin.get("model_file_sha256")), True),
        ("batch sent", str(origin.get("reference_batch") or "the gate's sample data (no reference batch)"), True),
        ("strict", "yes: advice rows fail the gate" if origin.get("strict") else "no: advice rows pass the gate", False),
    ]
    if origin.get("known_failures_ignored"):
        rows.append(("known failures", "ignored (--ignore-known-failures): judged as if dialsgate.toml declared none", False))
    if origin.get("reference_batch_sha256"):
        rows.insert(5, ("batch sha256", str(origin["reference_batch_sha256"]), True))
    code = origin.get("model_code") or {}
    if code.get("where") == "host":
        rows.append(
            (
                "model code ran",
                "on the gate's machine (--no-container), outside the serving image: this verdict cannot pass",
                False,
            )
        )
    elif code:
        rows.append(
            ("model code ran", f"in a worker container of the image: network {code.get('network')}, {code.get('limits')}", False)
        )
    if origin.get("server_network"):
        rows.append(("served container's network", str(origin["server_network"]), False))
    return rows


def header_facts(contract: Contract) -> list[tuple[str, str, bool]]:
    folder = f"{contract.code_dir}" + (" (dismcli build folder)" if contract.built else " (CodeUri)")
    return [
        ("model name", shorten(contract.name), False),
        ("template", str(contract.template_path), True),
        ("resource key", shorten(contract.resource_key), False),
        ("handler", shorten(contract.handler), True),
        ("model folder", shorten(folder), True),
        ("image", shorten(contract.image or "-"), False),
        ("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), False),
    ]


def package_facts(contract: Contract, listing: PackageListing | None = None) -> PackageFacts:
    """The model file and the package listing (``listing``: recorded by the gate's run)."""
    model_sha = plain_file_sha256(contract.model_file)
    listing = listing if listing is not None else package_listing(contract)
    return PackageFacts(str(contract.model_file), model_sha, listing, fmt_size(sum(size for _, size, _ in listing.files)))
