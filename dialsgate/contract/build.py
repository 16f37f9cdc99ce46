"""Offline equivalents of ``dismcli build`` (the same build folder, without the DIALS look-ups)
and of ``dismcli package`` (the same zip and packaged template, without the upload).

dismcli 0.6.1 validates the template with dism-core, then (after checking every monitoring
element against DIALS, which needs a CERN login and is skipped here) writes, relative to the
directory it runs in:

    .dism-artifacts/build/<ResourceKey>/      every entry of CodeUri, the ModelUri file,
                                              model-settings.json
    .dism-artifacts/build/template.yaml       the template, CodeUri/ModelUri rewritten

    python -m dialsgate build -f template.yaml [--build-root .dism-artifacts/build]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shutil
import stat
import sys
import uuid
import zipfile
from pathlib import Path

import yaml
from dism_core import InferenceServiceValidator, Template

from dialsgate.contract.template import MLSERVER_TYPE_PREFIX, MODEL_SETTINGS, model_settings, read_template
from dialsgate.plainfiles import NotPlain, copy_plain, copy_plain_file, inside, plain_kind

DEFAULT_BUILD_ROOT = Path(".dism-artifacts") / "build"


@contextlib.contextmanager
def working_directory(path: Path):
    """dismcli resolves CodeUri and ModelUri against the directory it is run from."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def build(template_path: Path, build_root: Path | None = None, document: dict | None = None) -> Path:
    """Write the build folder of every MLServer resource; returns the build root. Runs from the
    template's directory. ``document``: the template already read (the gate reads it once)."""

    template_path = Path(template_path).resolve()
    folder = template_path.parent
    with working_directory(folder):
        root = Path(build_root or DEFAULT_BUILD_ROOT).absolute()
        # The gate's caps, then dism-core's model.
        template = Template(**copy.deepcopy(document if document is not None else read_template(template_path)))
        _require_plain_paths(template, folder)  # before dism-core's validator opens the handler file
        InferenceServiceValidator(template)()
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        for key, resource in template.Resources.items():
            if not resource.Type.startswith(MLSERVER_TYPE_PREFIX):
                continue  # not an MLServer folder (Tritonserver): the gate's verdict names it not supported
            props = resource.Properties
            target = root / key
            target.mkdir(parents=True)
            # Plain files only, inside the template's folder (NotPlain otherwise): a link is never
            # copied, nor what it points at; dismcli would copy its target into the zip.
            model_file = inside(folder, str(props.ModelUri))
            copy_plain_file(model_file, target / props.ModelUri.name)
            try:
                copy_plain(inside(folder, str(props.CodeUri)), target, ignore=())
            except PermissionError as error:
                raise PermissionError(_copied_twice(model_file, props, error)) from None
            props.CodeUri = Path(key)
            props.ModelUri = Path(props.ModelUri.name)
            with open(target / MODEL_SETTINGS, "w") as stream:
                json.dump(model_settings(props.Name, props.Handler, str(props.ModelUri)), stream)
        with open(root / "template.yaml", "w") as stream:
            yaml.dump(template.model_dump(mode="json"), stream)
    return root


def _copied_twice(model_file: Path, props, error: PermissionError) -> str:
    """Why a copy of the CodeUri's files was refused: a read-only model file inside CodeUri is
    copied twice (as dismcli 0.6.1's builder does: ModelUri, then every file of CodeUri, each
    keeping its mode), and the second copy cannot open the first for writing (for any user but
    root). Any other refusal is the error's own words. The file's mode is read without following
    a link, as every file of a folder is."""
    if Path(error.filename or "").name == props.ModelUri.name and not os.lstat(model_file).st_mode & stat.S_IWUSR:
        return (
            f"{props.ModelUri} is read-only and inside CodeUri: dismcli build copies it twice (as ModelUri, then with "
            f"CodeUri's files), the first copy keeps its mode and the second is refused; make it writable by its owner "
            f"(chmod u+w {props.ModelUri})"
        )
    return str(error)


#: The bucket of an offline package's CodeUri (DIALS hands out the real bucket and key on upload).
OFFLINE_BUCKET = "offline"
DEFAULT_PACKAGE_ROOT = Path(".dism-artifacts") / "package"


def package(build_root: Path, package_root: Path, bucket: str = OFFLINE_BUCKET) -> dict[str, Path]:
    """Offline equivalent of ``dismcli package`` without the upload; returns {ResourceKey: zip}.

    As dismcli 0.6.1's packager: each MLServer resource's build folder zipped to
    ``<package_root>/<uuid4 hex>.zip`` (every file under it, named relative to it, deflated, no
    folder entries), its CodeUri ``s3://<bucket>/<Workspace>/<zip name>`` (offline: DIALS chooses
    bucket and key), the template written by dism-core to ``<package_root>/template.yaml``.
    """
    build_root, package_root = Path(build_root), Path(package_root)
    template = Template.from_yaml_file(build_root / "template.yaml")
    if package_root.exists():
        shutil.rmtree(package_root)
    package_root.mkdir(parents=True)
    zips = {}
    for key, resource in template.Resources.items():
        if not resource.Type.startswith(MLSERVER_TYPE_PREFIX):
            raise NotImplementedError(f"resource {key}: {resource.Type} is not an MLServer resource")
        target = build_root / resource.Properties.CodeUri
        zip_path = package_root / (uuid.uuid4().hex + ".zip")
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in target.rglob("*"):
                if path.is_file():
                    archive.write(path, path.relative_to(target))
        resource.Properties.CodeUri = f"s3://{bucket}/{resource.Workspace}/{zip_path.name}"
        zips[key] = zip_path
    template.to_yaml(package_root / "template.yaml")
    return zips


def _require_plain_paths(template, folder: Path) -> None:
    """CodeUri and ModelUri of every MLServer resource inside the template's folder through no
    link, and the handler's file a plain file (``NotPlain`` otherwise)."""
    for resource in template.Resources.values():
        if not resource.Type.startswith(MLSERVER_TYPE_PREFIX):
            continue
        props = resource.Properties
        inside(folder, str(props.ModelUri))
        handler_file = inside(folder, str(props.CodeUri)) / ("/".join(props.Handler.split(".")[:-1]) + ".py")
        if plain_kind(handler_file) not in (None, "missing"):
            raise NotPlain(f"the handler file {handler_file.name} is {plain_kind(handler_file)}: it is not read")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write .dism-artifacts/build as dismcli build does, offline.")
    parser.add_argument("-f", "--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--build-root", type=Path, help="default: .dism-artifacts/build beside the template")
    args = parser.parse_args(argv)
    root = build(args.template, args.build_root)
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        print(f"built {folder}")
    print(f"built {root / 'template.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
