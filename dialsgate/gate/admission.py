"""``dialsgate check package/template.yaml --package <uuid>.zip``: a maintainer's admission check
of what DIALS really receives (``dismcli package``'s template and the zip it uploaded).

The zip is unpacked as hostile input (``dialsgate.contract.packaged``) into a temporary folder,
removed after the gate; the gate then judges the author-form template written there, with the
unpacked zip as its build folder (``--build-dir``), so the package checks see the zip's own files
(its model-settings.json, anything stray) and nothing rebuilt. A refused zip is one failing row,
``package_admitted``, naming the member and why; no layer runs.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from dialsgate.contract.packaged import PackageRefused, unpack_package
from dialsgate.fingerprint import plain_file_sha256
from dialsgate.gate.runner import Row, Verdict
from dialsgate.gate.verdict import default_report_folder

#: The row of a refused package.
PACKAGE_CHECK = "package_admitted"


@contextlib.contextmanager
def admitted_package(args):
    """With ``args.package``: unpack it; while inside, ``args.template``, ``args.build_dir`` and
    ``args.resource`` name what the gate judges (or ``args.package_refused`` says why nothing
    is judged), ``args.package_facts`` what the provenance adds. Without it, nothing changes."""
    args.package_facts, args.package_refused = {}, None
    if getattr(args, "package", None) is None:
        yield
        return
    if args.build_dir is not None:
        raise SystemExit("dialsgate check: --package judges the zip's own files: it takes no --build-dir")
    packaged, zip_path = Path(args.template), Path(args.package)
    work = Path(tempfile.mkdtemp(prefix="dialsgate-package-"))
    try:
        try:
            package = unpack_package(packaged, zip_path, work / "admitted", args.resource)
        except PackageRefused as error:
            args.package_refused = str(error)
            args.package_facts = {
                "package": str(zip_path),
                "package_sha256": plain_file_sha256(zip_path),
                "packaged_template": str(packaged),
            }
            print(f"=== gate: package {zip_path} refused: {error}", flush=True)
        else:
            if args.report is None:  # the same folder for the same package, not one per temporary folder
                args.report = default_report_folder(packaged, zip_path, package.resource_key)
            args.template, args.build_dir, args.resource = package.template, package.folder, package.resource_key
            args.package_facts = package.facts()
            print(
                f"=== gate: package {zip_path} (sha256 {package.zip_sha256}): resource {package.resource_key}, "
                f"{len(package.members)} members unpacked into {package.folder}",
                flush=True,
            )
        yield
    finally:
        shutil.rmtree(work, ignore_errors=True)


def refused_verdict(args) -> Verdict | None:
    """The verdict of a refused package (one failing row), or None."""
    if getattr(args, "package_refused", None) is None:
        return None
    return Verdict([Row("gate", PACKAGE_CHECK, "failed", f"{Path(args.package).name}: {args.package_refused}")], None)


def with_package_facts(origin: dict | None, args) -> dict | None:
    """The verdict's provenance with the package's facts (its sha256 first of all)."""
    facts = getattr(args, "package_facts", None) or {}
    return {**(origin or {}), **facts} if facts else origin


def package_steps(args) -> list[str]:
    """After a pass with --package: what was judged, to admit exactly that file."""
    facts = getattr(args, "package_facts", None) or {}
    if "package_sha256" not in facts or getattr(args, "package_refused", None) is not None:
        return []
    return [f"admit exactly {facts['package']} (sha256 {facts['package_sha256']}) with {facts['packaged_template']}"]
