"""The HTML report (dialsgate.report) on this repository's model: one report, several checks.

Needs requirements/report.txt (matplotlib, mplhep): without matplotlib these tests fail.
"""

from __future__ import annotations

import hashlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from dialsgate.contract import load_contract
from dialsgate.report import write_report

REPOSITORY = Path(__file__).resolve().parents[2]
TEMPLATE = REPOSITORY / "template.yaml"
BATCH = REPOSITORY / "tests" / "data" / "reference_batch.npz"
VERDICT = [
    {"layer": "fast", "check": "check_input_dims[BPix1]", "result": "passed", "reason": ""},
    {"layer": "server", "check": "check_server_answers", "result": "failed", "reason": "port <8080> busy"},
]


class _Tables(HTMLParser):
    """Rows (lists of cell texts) of every <table id=...>, the img sources and element ids."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.ids: dict[str, str] = {}
        self._table = self._row = self._cell = None
        self._id: tuple[str, str] | None = None  # (tag, id) of the element whose text is collected
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs and tag != "table":
            self._id = (tag, attrs["id"])
            self.ids.setdefault(attrs["id"], "")
        if tag == "table" and "id" in attrs:
            self._table = self.tables.setdefault(attrs["id"], [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._table is not None and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if self._id is not None and tag == self._id[0]:
            self._id = None
        if tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._id is not None:
            self.ids[self._id[1]] += data


@pytest.fixture(scope="module")
def contract():
    return load_contract(TEMPLATE)


@pytest.fixture(scope="module")
def server_folder_caches(contract):
    return {path for path in contract.code_dir.rglob("__pycache__")}


@pytest.fixture(scope="module")
def batch_file(tmp_path_factory):
    """One lumisection of each kind (every 4th of the reference batch): all the report's cases,
    a quarter of the pictures to draw, so the fast layer stays fast."""
    with np.load(BATCH) as archive:
        subset = {name: archive[name][::4] for name in archive.files}
    path = tmp_path_factory.mktemp("batch") / "reference_batch.npz"
    np.savez(path, **subset)
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory, contract, server_folder_caches, batch_file):
    out = tmp_path_factory.mktemp("report")
    index = write_report(contract, out, reference_batch=batch_file, verdict_rows=VERDICT)
    parsed = _Tables()
    parsed.feed(index.read_text(encoding="utf-8"))
    return index, parsed


@pytest.fixture(scope="module")
def batch(batch_file):
    with np.load(batch_file) as archive:
        return {name: archive[name] for name in archive.files}


def test_index_and_pictures_written(report):
    index, parsed = report
    assert index.name == "index.html" and index.is_file()
    pictures = sorted(path.name for path in index.parent.glob("*.png"))
    assert pictures, "no PNG written"
    assert sorted(parsed.images) == pictures, "index.html links other pictures than the ones written"


def test_flags_table_has_one_row_per_lumisection(report, batch):
    _, parsed = report
    rows = parsed.tables["flags-table"]
    assert len(rows) == len(batch["BPix1"])
    assert [int(row[0]) for row in rows] == list(range(len(batch["BPix1"])))
    assert [row[1] for row in rows] == batch["kind"].tolist()
    assert [row[2] for row in rows] == ["yes" if value else "no" for value in batch["expected_flag"]]


def test_one_picture_per_flagged_lumisection_plus_one_clean(report, batch):
    index, parsed = report
    model_flag = np.array([row[3] == "yes" for row in parsed.tables["flags-table"]])
    assert model_flag.any(), "the reference batch should contain flagged lumisections"
    pictured = model_flag | batch["expected_flag"]  # a missed anomaly is pictured too
    clean = int(np.flatnonzero(~pictured & (batch["kind"] == "clean"))[0])
    expected = sorted([f"ls-{i:04d}.png" for i in np.flatnonzero(pictured)] + [f"ls-{clean:04d}.png"])
    assert sorted(path.name for path in index.parent.glob("*.png")) == expected


def test_pictures_are_drawn_and_small(report):
    from PIL import Image

    index, _ = report
    pictures = sorted(index.parent.glob("*.png"))
    for path in pictures:
        with Image.open(path) as image:
            assert image.format == "PNG"
            width, height = image.size
            assert 800 <= width <= 2000 and 600 <= height <= 1600, f"{path.name}: {image.size}"
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 50, f"{path.name} looks blank ({len(colours)} colours)"
    total = sum(path.stat().st_size for path in [index, *pictures])
    assert total < 8e6, f"the report takes {total / 1e6:.1f} MB"


def test_model_sha256_matches(report, contract):
    _, parsed = report
    assert parsed.ids["model-sha256"].strip() == hashlib.sha256(contract.model_file.read_bytes()).hexdigest()


def test_package_listing_names_settings_and_model(report, contract):
    _, parsed = report
    files = {row[0]: int(row[1]) for row in parsed.tables["package-table"]}
    assert "model-settings.json" in files
    assert files[contract.model_file.name] == contract.model_file.stat().st_size
    assert contract.handler_module + ".py" in files


def test_verdict_table_and_serving_pins_shown(report):
    _, parsed = report
    rows = parsed.tables["verdict-table"]
    assert [row[1] for row in rows] == ["check_server_answers", "check_input_dims[BPix1]"], "failures come first"
    assert rows[0][2:] == ["failed", "port <8080> busy"]
    assert parsed.ids["verdict"].count("Gate verdict: FAILED") == 1
    pins = {row[0]: row[1] for row in parsed.tables["pins-table"]}
    assert pins["numpy"] == "1.26.4" and pins["scikit-learn"] == "1.4.1.post1" and pins["pydantic"] == "1.10.14"


def test_server_folder_left_without_caches(report, contract, server_folder_caches):
    after = {path for path in contract.code_dir.rglob("__pycache__")}
    assert after <= server_folder_caches, f"the report left {sorted(map(str, after - server_folder_caches))} in the server folder"
