"""``dialsgate check --package``: dismcli package's template and zip unpacked as hostile input
(dialsgate.contract.packaged). A good package round-trips into the author form the gate judges;
each hostile zip is refused, naming the member and why, with nothing left unpacked."""

from __future__ import annotations

import shutil
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from dialsgate.contract.build import build, package
from dialsgate.contract.packaged import PACKAGE_FOLDER, PackageRefused, unpack_package
from dialsgate.contract.template import load_contract, read_template
from dialsgate.gate.admission import PACKAGE_CHECK, admitted_package, refused_verdict

REPOSITORY = Path(__file__).resolve().parents[2]
PLAIN = REPOSITORY / "tests" / "gate" / "corpus" / "sklearn_nmf_plain"
ZIP_NAME = "0123456789abcdef0123456789abcdef.zip"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> tuple[Path, Path]:
    """The corpus's plain NMF folder built and packaged offline as dismcli does: (template, zip)."""
    project = tmp_path_factory.mktemp("project")
    shutil.copy(PLAIN / "template.yaml", project / "template.yaml")
    shutil.copytree(PLAIN / "mlserver-model", project / "mlserver-model")
    root = build(project / "template.yaml")
    (zip_path,) = package(root, project / ".dism-artifacts" / "package").values()
    return zip_path.parent / "template.yaml", zip_path


def test_a_good_package_round_trips_into_the_author_form(packaged, tmp_path):
    template, zip_path = packaged
    admitted = unpack_package(template, zip_path, tmp_path / "into")
    assert admitted.resource_key == "NMFPlain"
    assert admitted.code_uri == f"s3://offline/tracker/{zip_path.name}"
    assert sorted(member.name for member in admitted.members) == ["app.py", "model-settings.json", "nmf_bpix1.joblib"]
    assert (admitted.folder / "nmf_bpix1.joblib").read_bytes() == (PLAIN / "mlserver-model" / "nmf_bpix1.joblib").read_bytes()
    assert admitted.model_file == admitted.folder / "nmf_bpix1.joblib"
    for path in [admitted.folder, *admitted.folder.rglob("*")]:
        assert stat.S_IMODE(path.lstat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    import hashlib

    assert admitted.zip_sha256 == hashlib.sha256(zip_path.read_bytes()).hexdigest()
    properties = read_template(admitted.template)["Resources"]["NMFPlain"]["Properties"]
    assert properties["CodeUri"] == f"{PACKAGE_FOLDER}/" and properties["ModelUri"] == f"{PACKAGE_FOLDER}/nmf_bpix1.joblib"
    author = load_contract(admitted.template, build_dir=admitted.folder)
    original = load_contract(PLAIN / "template.yaml")
    for field in ("name", "handler", "inputs", "outputs", "metadata_inputs", "builtin_threshold", "flagging_key"):
        assert getattr(author, field) == getattr(original, field), field
    assert author.built and author.code_dir == admitted.folder.resolve()
    # Without --build-dir the author form stands alone too (CodeUri and ModelUri inside its folder).
    alone = load_contract(admitted.template)
    assert alone.code_dir == admitted.folder.resolve() and alone.model_file == admitted.model_file.resolve()


def test_metadata_attributes_without_dims_get_dims_minus_one(packaged, tmp_path):
    template, zip_path = packaged
    text = template.read_text().replace(
        "      InputSignature:",
        "      InputMetadata:\n      - Name: oms\n        Source: OMS\n        Endpoint: lumisections\n"
        "        Attributes:\n        - {Name: pileup, DataType: FP32}\n      InputSignature:",
        1,
    )
    (tmp_path / "template.yaml").write_text(text)
    admitted = unpack_package(tmp_path / "template.yaml", zip_path, tmp_path / "into")
    (meta,) = read_template(admitted.template)["Resources"]["NMFPlain"]["Properties"]["InputMetadata"]
    assert meta["Attributes"] == [{"Name": "pileup", "DataType": "FP32", "Dims": [-1]}]


# --------------------------------------------------------------------------- hostile zips


def _zip_with(tmp_path: Path, good_zip: Path, extra: list[tuple[zipfile.ZipInfo | str, bytes]], keep=True) -> Path:
    """The good zip's members (``keep``) plus ``extra``, written under the good zip's name."""
    folder = tmp_path / "hostile"
    folder.mkdir(exist_ok=True)
    target = folder / good_zip.name
    with zipfile.ZipFile(good_zip) as good, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        if keep:
            for info in good.infolist():
                out.writestr(info, good.read(info))
        for info, data in extra:
            out.writestr(info, data)
    return target


def _info(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _refused(packaged, zip_path: Path, tmp_path: Path, *words: str) -> str:
    template, _ = packaged
    into = tmp_path / "into"
    with pytest.raises(PackageRefused) as refused:
        unpack_package(template, zip_path, into)
    reason = str(refused.value)
    assert all(word in reason for word in words), reason
    assert not (into / PACKAGE_FOLDER).exists(), "a refused zip left files behind"
    return reason


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(
    ("member", "data", "words"),
    [
        (_info("README.md", stat.S_IFLNK | 0o777), b"/etc/passwd", ("'README.md'", "symbolic link")),
        (_info("../outside.py"), b"x = 1\n", ("'../outside.py'", "'..'")),
        (_info("sub/../../outside.py"), b"x = 1\n", ("'..'",)),
        (_info("/etc/cron.d/job"), b"* * * * * root id\n", ("'/etc/cron.d/job'", "absolute")),
        (_info("app.py"), b"print('second app.py')\n", ("'app.py'", "duplicate")),
        (_info("APP.py"), b"x = 1\n", ("'APP.py'", "'app.py'", "case")),
        (_info("ａpp.py"), b"x = 1\n", ("'app.py'", "normalisation")),  # fullwidth a: NFKC folds it to app.py
        (_info("pipe", stat.S_IFIFO | 0o644), b"", ("'pipe'", "FIFO")),
        (_info("disk", stat.S_IFBLK | 0o644), b"", ("'disk'", "device")),
        (_info("app.py/inner.py"), b"x = 1\n", ("'app.py'", "also the folder")),
        (_info("a\\..\\b.py"), b"x = 1\n", ("backslash",)),
        (_info("evil\x1b[2J.py"), b"x = 1\n", ("control character", "\\x1b")),
    ],
    ids=["symlink", "dotdot", "nested-dotdot", "absolute", "duplicate", "case", "nfkc", "fifo", "device", "file-and-folder",
         "backslash", "escape"],
)  # fmt: skip
def test_a_hostile_member_is_refused_by_name(packaged, tmp_path, member, data, words):
    _refused(packaged, _zip_with(tmp_path, packaged[1], [(member, data)]), tmp_path, *words)


def test_an_encrypted_member_is_refused(packaged, tmp_path):
    hostile = _zip_with(tmp_path, packaged[1], [(_info("secret.py"), b"x = 1\n")])
    data = bytearray(hostile.read_bytes())
    # The central directory entry of secret.py: flag bit 0 (traditional PKWARE encryption) set.
    entry = data.rfind(b"PK\x01\x02", 0, data.rfind(b"secret.py"))
    flags = struct.unpack_from("<H", data, entry + 8)[0]
    struct.pack_into("<H", data, entry + 8, flags | 0x1)
    hostile.write_bytes(bytes(data))
    _refused(packaged, hostile, tmp_path, "'secret.py'", "encrypted")


def test_a_bomb_beyond_the_member_cap_is_refused_before_inflating(packaged, tmp_path, monkeypatch):
    monkeypatch.setenv("DIALSGATE_MAX_PACKAGE_MEMBER_BYTES", str(2**20))
    hostile = _zip_with(tmp_path, packaged[1], [(_info("weights.bin"), bytes(8 * 2**20))])
    assert hostile.stat().st_size < 64 * 2**10  # 8 MiB of zeros in a few KB
    _refused(packaged, hostile, tmp_path, "'weights.bin'", "8,388,608", "DIALSGATE_MAX_PACKAGE_MEMBER_BYTES")


def test_a_bomb_beyond_the_total_cap_is_refused(packaged, tmp_path, monkeypatch):
    monkeypatch.setenv("DIALSGATE_MAX_PACKAGE_UNPACKED_BYTES", str(4 * 2**20))
    extra = [(_info(f"part{index}.bin"), bytes(2**20)) for index in range(5)]
    _refused(packaged, _zip_with(tmp_path, packaged[1], extra), tmp_path, "DIALSGATE_MAX_PACKAGE_UNPACKED_BYTES")


def test_a_member_inflating_beyond_its_declared_size_is_refused(packaged, tmp_path):
    """The declared sizes are not trusted: a header saying 1,000 bytes over 5 MiB of zeros."""
    hostile = _zip_with(tmp_path, packaged[1], [(_info("weights.bin"), bytes(5 * 2**20))])
    data = bytearray(hostile.read_bytes())
    # The uncompressed size in the local header (its name: the first one) and in the directory (the last).
    for signature, offset, name_at in (
        (b"PK\x03\x04", 22, data.find(b"weights.bin")),
        (b"PK\x01\x02", 24, data.rfind(b"weights.bin")),
    ):
        header = data.rfind(signature, 0, name_at)
        struct.pack_into("<L", data, header + offset, 1000)
    hostile.write_bytes(bytes(data))
    _refused(packaged, hostile, tmp_path, "'weights.bin'")


def test_the_inflated_bytes_are_counted_not_the_declared_ones(packaged, tmp_path, monkeypatch):
    """Even when a member's header is believed (here: told it holds 1,000 bytes), inflating
    stops at the cap, counted as the bytes come."""
    from dialsgate.contract import packaged as module

    monkeypatch.setenv("DIALSGATE_MAX_PACKAGE_MEMBER_BYTES", str(2**20))
    hostile = _zip_with(tmp_path, packaged[1], [(_info("weights.bin"), bytes(3 * 2**20))], keep=False)
    with zipfile.ZipFile(hostile) as archive, pytest.raises(PackageRefused, match="'weights.bin' inflates beyond the cap"):
        module._extract(archive, [module.Member("weights.bin", 1000, False)], archive.NameToInfo, tmp_path / "out")


def test_too_many_members_are_refused(packaged, tmp_path, monkeypatch):
    monkeypatch.setenv("DIALSGATE_MAX_PACKAGE_MEMBERS", "5")
    extra = [(_info(f"module{index}.py"), b"x = 1\n") for index in range(4)]
    _refused(packaged, _zip_with(tmp_path, packaged[1], extra), tmp_path, "7 members", "DIALSGATE_MAX_PACKAGE_MEMBERS")


def test_a_zip_over_the_compressed_cap_is_refused_unread(packaged, tmp_path, monkeypatch):
    monkeypatch.setenv("DIALSGATE_MAX_PACKAGE_BYTES", "1000")
    _refused(packaged, packaged[1], tmp_path, "1,000", "DIALSGATE_MAX_PACKAGE_BYTES")


def test_a_symbolic_link_as_the_zip_is_refused(packaged, tmp_path):
    link = tmp_path / packaged[1].name
    link.symlink_to(packaged[1])
    _refused(packaged, link, tmp_path, "symbolic link")


def test_a_template_not_naming_the_zip_or_its_model_is_refused(packaged, tmp_path):
    template, zip_path = packaged
    renamed = tmp_path / ZIP_NAME
    shutil.copy(zip_path, renamed)
    _refused(packaged, renamed, tmp_path, "names the zip", ZIP_NAME)
    without_model = _zip_with(tmp_path, zip_path, [(_info("app.py"), b"")], keep=False)
    _refused(packaged, without_model, tmp_path, "ModelUri", "'nmf_bpix1.joblib'", "no file of the zip")


def test_a_refused_package_is_one_failing_row_and_the_folder_is_removed(packaged, tmp_path):
    import argparse

    template, zip_path = packaged
    hostile = _zip_with(tmp_path, zip_path, [(_info("README.md", stat.S_IFLNK | 0o777), b"/etc/passwd")])
    args = argparse.Namespace(template=template, package=hostile, build_dir=None, resource=None, report=None)
    with admitted_package(args):
        verdict = refused_verdict(args)
        assert args.template == template and args.package_facts["package_sha256"]
    (row,) = verdict.rows
    assert (row.check, row.result) == (PACKAGE_CHECK, "failed") and "'README.md'" in row.reason and not verdict.passed

    args = argparse.Namespace(template=template, package=zip_path, build_dir=None, resource=None, report=None)
    with admitted_package(args):
        unpacked = args.build_dir
        assert refused_verdict(args) is None and (unpacked / "app.py").is_file()
        assert args.resource == "NMFPlain" and args.report is not None
    assert not unpacked.exists(), "the unpacked zip outlived the gate"
