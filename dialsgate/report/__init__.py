"""A static HTML report on one DIALS model folder: verdict, flags on the reference batch, pictures.

    python -m dialsgate.report --template template.yaml [--build-dir DIR] [--reference-batch F]
                               [--verdict verdict.json] [--pictures module:function] --out report/

The report folder holds ``index.html`` and, under ``pictures/``, the PNG files of the picture
hooks (relative links; no JavaScript). The page shows:

1. a summary line (the gate's verdict, PASS or FAIL, and the counts) and the model's facts;
2. the verdict grouped by concern (template, signature, robustness, packaging, versions,
   server, other; :mod:`.concerns`): concerns with failures first, the rows that did not pass
   first with their full reasons, the passed rows folded;
3. the reference batch answered by the handler in its worker container (as MLServer loads it):
   Flag and Metric per lumisection against the labels in the ``.npz`` (optional), per kind;
4. model pictures from the hooks (:mod:`.hooks`): the generic report knows no model;
5. the serving image's package versions and the local image, if Docker answers;
6. the model file's sha256 and every file ``dismcli package`` would zip.

The work is split into facts (:mod:`.facts`: plain data, no HTML) and rendering
(:mod:`.render`: Jinja2 templates in ``dialsgate/report/templates``, autoescaped).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dialsgate.contract.template import Contract, load_contract
from dialsgate.report.facts import (
    MAX_PICTURES,
    BatchAnswers,
    PackageListing,
    PictureFacts,
    ReportFacts,
    answer_batch,
    batch_facts,
    default_reference_batch,
    header_facts,
    local_image,
    package_facts,
    picture_indices,
    provenance_facts,
    serving_facts,
    verdict_facts,
)
from dialsgate.report.hooks import ENVIRONMENT_VARIABLE, GROUP, PICTURES_FOLDER, run_hooks
from dialsgate.report.render import render

__all__ = ["ENVIRONMENT_VARIABLE", "GROUP", "BatchAnswers", "ReportFacts", "gather_facts", "main", "render", "write_report"]


def gather_facts(contract: Contract, out_dir, reference_batch=None, verdict_rows=None, pins_file: Path | None = None,
                 picture_hooks=None, provenance=None, answers: BatchAnswers | None = None,
                 listing: PackageListing | None = None) -> ReportFacts:  # fmt: skip
    """Everything the page shows; the picture hooks write their PNG files under ``out_dir``.
    ``answers``, ``listing``: the reference batch's answers and the package listing recorded by
    the gate's run (then no model code runs and nothing is built here); without them, the handler
    is loaded in its worker container to answer it, and the folder built offline."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if answers is None:
        batch_path = Path(reference_batch) if reference_batch is not None else default_reference_batch(contract)
        answers = answer_batch(contract, batch_path) if batch_path is not None else None
    batch = batch_facts(contract, answers) if answers is not None else None
    if answers is None or answers.error is not None:
        pictures = PictureFacts(sentence="No model pictures without the reference batch answers.")
    else:
        chosen, clean, left_out = picture_indices(answers)
        indices = sorted(chosen + ([clean] if clean is not None else []))
        pictures = run_hooks(contract, answers, indices, out_dir, picture_hooks)
        if left_out:
            pictures.notes.append(
                f"{left_out} further flagged lumisections were not offered to the hooks (limit {MAX_PICTURES})."
            )
        anchors = {}
        for picture_set in pictures.sets:
            for picture in picture_set.pictures:
                if picture.ls is not None:
                    anchors.setdefault(picture.ls, picture.anchor)
        for row in batch.rows:
            row.picture = anchors.get(row.index)
    header = header_facts(contract)
    return ReportFacts(
        name=contract.name,
        header=header,
        generated=header[-1][1],
        verdict=verdict_facts(verdict_rows),
        batch=batch,
        pictures=pictures,
        serving=serving_facts(contract, local_image(contract.image), pins_file=Path(pins_file) if pins_file else None),
        package=package_facts(contract, listing),
        elapsed_s=time.perf_counter() - started,
        provenance=provenance_facts(provenance),
    )


def write_report(contract: Contract, out_dir, reference_batch=None, verdict_rows=None, pins_file: Path | None = None,
                 picture_hooks=None, provenance=None, answers: BatchAnswers | None = None,
                 listing: PackageListing | None = None) -> Path:  # fmt: skip
    """Write ``out_dir/index.html`` and its pictures; returns the index.html path.

    ``picture_hooks``: callables or ``module:function`` / ``file.py:function`` specs, called
    besides those of the environment variable and the entry points (see :mod:`.hooks`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    facts = gather_facts(contract, out_dir, reference_batch, verdict_rows, pins_file, picture_hooks, provenance, answers, listing)
    index = out_dir / "index.html"
    index.write_text(render(facts), encoding="utf-8")
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Write an HTML report on a DIALS model folder (verdict, flags, pictures, versions, package)."
    )
    parser.add_argument("--template", type=Path, default=Path("template.yaml"), help="DISM template (default: ./template.yaml)")
    parser.add_argument("--resource", default=None, help="resource key, when the template has several MLServer resources")
    parser.add_argument(
        "--build-dir", type=Path, default=None, help="a dismcli .dism-artifacts/build/<ResourceKey> folder instead of CodeUri"
    )
    parser.add_argument(
        "--reference-batch", type=Path, default=None, help=".npz with one array per input (default: beside the template)"
    )
    parser.add_argument(
        "--verdict",
        type=Path,
        default=None,
        help="the gate's verdict.json to show ({provenance, rows: [{layer, check, result, reason}]})",
    )
    parser.add_argument(
        "--pictures", action="append", default=[], metavar="SPEC",
        help=f"a picture hook, module:function or file.py:function (repeatable; besides {ENVIRONMENT_VARIABLE} and the {GROUP} entry points)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: report/)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    contract = load_contract(args.template, build_dir=args.build_dir, resource_key=args.resource)
    document = json.loads(args.verdict.read_text(encoding="utf-8")) if args.verdict else None
    # verdict.json: {"provenance", "rows"}; a plain list of rows from an older gate.
    verdict_rows, origin = (document.get("rows"), document.get("provenance")) if isinstance(document, dict) else (document, None)
    index = write_report(
        contract,
        args.out,
        reference_batch=args.reference_batch,
        verdict_rows=verdict_rows,
        picture_hooks=args.pictures,
        provenance=origin,
    )
    pictures = sorted((index.parent / PICTURES_FOLDER).rglob("*.png"))
    size = sum(path.stat().st_size for path in [index, *pictures])
    print(f"wrote {index} and {len(pictures)} pictures ({size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    return 0
