"""The HTML report (dialsgate.report) on this repository's model: one report, several checks;
then the example model, escaping, grouping by concern and the picture hooks.

Needs requirements/report.txt (Jinja2, matplotlib, mplhep): without them these tests fail.
"""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from dialsgate.contract.template import load_contract
from dialsgate.report import ENVIRONMENT_VARIABLE, write_report
from dialsgate.report.concerns import concern_of

REPOSITORY = Path(__file__).resolve().parents[2]
TEMPLATE = REPOSITORY / "template.yaml"
EXAMPLE = REPOSITORY / "examples" / "nmf1d" / "template.yaml"
BATCH = REPOSITORY / "tests" / "data" / "reference_batch.npz"
#: This repository's picture hook, by file (nothing of the repository is installed in tox).
PICTURE_HOOK = str(REPOSITORY / "model_src" / "pixelnmf_train" / "report_pictures.py") + ":pictures"
VERDICT = [
    {"layer": "fast", "check": "check_input_dims[BPix1]", "result": "passed", "reason": ""},
    {"layer": "fast", "check": "check_template_schema", "result": "passed", "reason": ""},
    {
        "layer": "server",
        "check": "check_server_answers",
        "result": "failed",
        "reason": "port <8080> busy\ncaused by <script>alert(1)</script>",
    },
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
    index = write_report(contract, out, reference_batch=batch_file, verdict_rows=VERDICT, picture_hooks=[PICTURE_HOOK])
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
    pictures = sorted(path.relative_to(index.parent).as_posix() for path in index.parent.rglob("*.png"))
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
    assert sorted(path.name for path in index.parent.rglob("*.png")) == expected


def test_pictures_are_drawn_and_small(report):
    from PIL import Image

    index, _ = report
    pictures = sorted(index.parent.rglob("*.png"))
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


def test_verdict_grouped_by_concern_and_serving_pins_shown(report):
    index, parsed = report
    assert parsed.tables["verdict-server"] == [
        ["server", "check_server_answers", "failed", "port <8080> busy\ncaused by <script>alert(1)</script>"]
    ]
    assert parsed.tables["passed-signature"] == [["fast", "check_input_dims[BPix1]", "passed", ""]]
    assert parsed.tables["passed-template"] == [["fast", "check_template_schema", "passed", ""]]
    assert "Gate verdict: FAIL" in parsed.ids["summary"] and "1 failed" in parsed.ids["summary"]
    page = index.read_text(encoding="utf-8")
    assert page.index('id="concern-server"') < page.index('id="concern-template"') < page.index('id="concern-signature"')
    pins = {row[0]: row[1] for row in parsed.tables["pins-table"]}
    assert pins["numpy"] == "1.26.4" and pins["scikit-learn"] == "1.4.1.post1" and pins["pydantic"] == "1.10.14"


def test_server_folder_left_without_caches(report, contract, server_folder_caches):
    after = {path for path in contract.code_dir.rglob("__pycache__")}
    assert after <= server_folder_caches, f"the report left {sorted(map(str, after - server_folder_caches))} in the server folder"


def test_flags_table_links_each_pictured_lumisection(report):
    index, parsed = report
    page = index.read_text(encoding="utf-8")
    links = re.findall(r'<a href="#(picture-[^"]+)">picture</a>', page)
    assert links and all(f'<figure id="{anchor}">' in page for anchor in links)
    assert len(links) == len(parsed.images)


# -- escaping, grouping and the hook mechanism on the example model (fast: no pictures drawn) --
def _page(index: Path) -> str:
    return index.read_text(encoding="utf-8")


def test_reasons_are_escaped_with_line_breaks_kept(report):
    index, _ = report
    page = _page(index)
    assert "<script>" not in page
    assert "port &lt;8080&gt; busy\ncaused by &lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_concern_table():
    assert concern_of("fast", "check_input_dims[BPix1]") == "signature"
    assert concern_of("fast", "check_package_size") == "packaging"
    assert concern_of("parity", "check_anything") == "versions"
    assert concern_of("fast", "check_model_file_loads_with_image_versions") == "versions"
    assert concern_of("server", "check_input_dims[BPix1]@http") == "signature", "a transported check keeps its concern"
    assert concern_of("server", "check_bad_request_refused[missing_input]@http") == "robustness"
    assert concern_of("server", "test_server_health::test_ready") == "server"
    assert concern_of("server", "(layer)") == "server"
    assert concern_of("fast", "test_properties::test_x") == "other"


def test_failing_rows_first_and_passed_rows_folded(tmp_path):
    verdict = [
        {"layer": "fast", "check": "check_input_dims[A]", "result": "passed", "reason": ""},
        {"layer": "fast", "check": "check_bad_request_refused", "result": "passed", "reason": ""},
        {"layer": "fast", "check": "check_input_datatype[A]", "result": "failed", "reason": "line one\nline two"},
        {"layer": "fast", "check": "check_output_matches_signature[A]", "result": "skipped", "reason": "why"},
    ]
    index = write_report(load_contract(EXAMPLE), tmp_path, verdict_rows=verdict)
    page = _page(index)
    signature = page[page.index('id="concern-signature"') :]
    assert page.index('id="concern-signature"') < page.index('id="concern-robustness"'), "the failing concern comes first"
    failing, folded = signature.split("<details>", 1)
    assert (
        "check_input_datatype[A]" in failing
        and "check_output_matches_signature[A]" in failing
        and "line one\nline two" in failing
    )
    assert "check_input_dims[A]" not in failing and "check_input_dims[A]" in folded.split("</details>", 1)[0]
    robustness = page[page.index('id="concern-robustness"') :].split("</section>", 1)[0]
    assert "<details>" in robustness and "1 passed" in robustness
    parsed = _Tables()
    parsed.feed(page)
    assert "Gate verdict: FAIL" in parsed.ids["summary"] and "2 passed, 1 failed, 1 skipped" in parsed.ids["summary"]


def test_example_without_hooks_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    index = write_report(load_contract(EXAMPLE), tmp_path)
    page = _page(index)
    assert "No picture hook is registered" in page and "<img" not in page
    parsed = _Tables()
    parsed.feed(page)
    assert len(parsed.tables["flags-table"]) > 0
    assert "No gate verdict" in parsed.ids["summary"]


_CALLS: list = []


def fake_hook(contract, answers, indices, out_dir):
    """A picture hook for the tests: one tiny PNG for the first lumisection offered."""
    from PIL import Image

    _CALLS.append((contract.name, list(indices)))
    if not indices:
        return "nothing to picture"
    Image.new("RGB", (4, 4), "red").save(out_dir / "one.png")
    return [(None, "a note <b>escaped</b>"), ("one.png", f"LS {indices[0]} & more", indices[0])]


fake_hook.applies_to = lambda contract: True


def test_hook_from_the_environment_variable_is_called(tmp_path, monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, f"{__name__}:fake_hook")
    _CALLS.clear()
    index = write_report(load_contract(EXAMPLE), tmp_path)
    assert len(_CALLS) == 1
    page = _page(index)
    parsed = _Tables()
    parsed.feed(page)
    assert [Path(src).name for src in parsed.images] == ["one.png"] and (tmp_path / parsed.images[0]).is_file()
    assert "a note &lt;b&gt;escaped&lt;/b&gt;" in page and "&amp; more" in page
    if _CALLS[0][1]:
        assert f'<a href="#picture-1-ls-{_CALLS[0][1][0]}">picture</a>' in page


def test_hook_from_the_argument_and_a_failing_hook(tmp_path, monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)

    def broken(contract, answers, indices, out_dir):
        raise RuntimeError("no <luck>")

    broken.applies_to = lambda contract: True

    _CALLS.clear()
    index = write_report(load_contract(EXAMPLE), tmp_path, picture_hooks=[fake_hook, broken])
    assert len(_CALLS) == 1
    page = _page(index)
    assert "the hook failed: RuntimeError: no &lt;luck&gt;" in page


def test_hooks_not_called_on_a_dangerous_model_file(tmp_path, monkeypatch):
    from dialsgate.modelfile.pickle_audit import Audit, GlobalUse
    from dialsgate.report import hooks

    dangerous = Audit(
        path=Path("m.joblib"), refused=[(GlobalUse("posix", "system", {"called by REDUCE"}), "not on the allowlist")]
    )
    monkeypatch.setattr("dialsgate.report.hooks.audit_model_file", lambda path, code_dir=None: dangerous)
    _CALLS.clear()
    facts = hooks.run_hooks(load_contract(EXAMPLE), None, [0], tmp_path, picture_hooks=[fake_hook])
    assert _CALLS == [] and "posix.system (called by REDUCE): not on the allowlist" in facts.sentence


def test_hooks_not_called_on_a_model_file_not_fully_audited(tmp_path, monkeypatch):
    from dialsgate.modelfile.pickle_audit import Audit
    from dialsgate.report import hooks

    stopped = Audit(path=Path("m.joblib"), error="the walk stopped at TypeError: x")
    monkeypatch.setattr("dialsgate.report.hooks.audit_model_file", lambda path, code_dir=None: stopped)
    _CALLS.clear()
    facts = hooks.run_hooks(load_contract(EXAMPLE), None, [0], tmp_path, picture_hooks=[fake_hook])
    assert _CALLS == [] and "could not be fully audited" in facts.sentence


def test_a_hook_runs_only_on_the_folders_it_declares(tmp_path):
    from dialsgate.report import hooks

    def undeclared(contract, answers, indices, out_dir):
        _CALLS.append("undeclared")
        return []

    def elsewhere(contract, answers, indices, out_dir):
        _CALLS.append("elsewhere")
        return []

    elsewhere.applies_to = lambda contract: False
    _CALLS.clear()
    facts = hooks.run_hooks(load_contract(EXAMPLE), None, [0], tmp_path, picture_hooks=[undeclared, elsewhere])
    assert _CALLS == []
    assert "declares no applies_to" in facts.sets[0].sentence and "not for this folder" in facts.sets[1].sentence


def test_verdict_json_on_the_command_line(tmp_path, monkeypatch):
    from dialsgate.report import main

    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    verdict = tmp_path / "verdict.json"
    verdict.write_text(json.dumps(VERDICT))
    assert main(["--template", str(EXAMPLE), "--verdict", str(verdict), "--out", str(tmp_path / "out")]) == 0
    assert "Gate verdict: FAIL" in _page(tmp_path / "out" / "index.html")


def test_advice_rows_pass_and_are_shown_with_their_reasons(tmp_path):
    verdict = [
        {"layer": "fast", "check": "check_input_dims[A]", "result": "passed", "reason": ""},
        {"layer": "fast", "check": "check_empty_batch_answered", "result": "advice", "reason": "an empty batch (N=0) crashed"},
        {"layer": "fast", "check": "check_pickle_globals_safe", "result": "not applicable", "reason": "not a pickle"},
    ]
    page = _page(write_report(load_contract(EXAMPLE), tmp_path, verdict_rows=verdict))
    parsed = _Tables()
    parsed.feed(page)
    assert "Gate verdict: PASS" in parsed.ids["summary"] and "1 advice" in parsed.ids["summary"]
    robustness = page[page.index('id="concern-robustness"') :].split("</section>", 1)[0]
    unfolded = robustness.split("<details>", 1)[0]
    assert 'id="advice-robustness"' in unfolded and "an empty batch (N=0) crashed" in unfolded and "1 advice" in robustness


def test_picture_hooks_named_in_dialsgate_toml_resolve_beside_the_template(tmp_path):
    """A repository adds its pictures as any author would: report_pictures in dialsgate.toml."""
    from types import SimpleNamespace

    from dialsgate.report.hooks import configured_hooks

    (tmp_path / "dialsgate.toml").write_text('report_pictures = ["dev/pictures.py:draw", "mypackage.pictures:draw"]\n')
    contract = SimpleNamespace(template_path=tmp_path / "template.yaml")
    assert configured_hooks(contract) == [f"{tmp_path / 'dev' / 'pictures.py'}:draw", "mypackage.pictures:draw"]
    ours = load_contract(REPOSITORY / "template.yaml")
    assert configured_hooks(ours) == [PICTURE_HOOK], "this repository's pictures come through its dialsgate.toml"
