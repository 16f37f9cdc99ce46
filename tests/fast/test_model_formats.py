"""Model files that are positively not pickles are recognised by their whole structure, and a
pickle with a misleading name is not."""

from __future__ import annotations

import json
import struct

import joblib
import numpy as np
import pytest

from dialsgate.modelfile.formats import recognise
from dialsgate.modelfile.pickle_audit import audit_model_file
from dialsgate.plainfiles import NotPlain


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def onnx_model_bytes() -> bytes:
    """A ModelProto as protobuf writes it: ir_version 8, producer, graph, opset_import."""
    graph = _field(1, b"\x0a\x01x\x12\x01y\x22\x08Identity") + _field(2, b"graph")
    return _varint(1 << 3) + _varint(8) + _field(2, b"hand") + _field(7, graph) + _field(8, _varint(2 << 3) + _varint(17))


def ubj_string(text: str) -> bytes:
    data = text.encode()
    return b"U" + bytes([len(data)]) + data


def test_onnx_is_recognised(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_model_bytes())
    found = recognise(path)
    assert found is not None and found.name == "ONNX" and "ir_version 8" in found.detail
    audit = audit_model_file(path)
    assert audit.format == found and audit.polyglot is None and audit.safe_to_load


def test_truncated_onnx_is_not_recognised(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_model_bytes()[:-3])
    assert recognise(path) is None


def test_xgboost_json_is_recognised(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"learner": {"gradient_booster": {}}, "version": [2, 0, 3]}))
    assert recognise(path).name == "XGBoost JSON"


def test_other_json_is_not_recognised(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"weights": [1, 2]}))
    assert recognise(path) is None


def test_xgboost_ubj_is_recognised(tmp_path):
    # {"learner": {"weights": [$d#i3 ...]}, "version": [2, 0, 3]} in UBJ, with a typed array.
    weights = b"[$d#i\x03" + struct.pack(">3f", 1, 2, 3)
    learner = b"{" + ubj_string("weights") + weights + b"}"
    body = b"{" + ubj_string("learner") + learner + ubj_string("version") + b"[i\x02i\x00i\x03]" + b"}"
    path = tmp_path / "model.ubj"
    path.write_bytes(body)
    found = recognise(path)
    assert found is not None and found.name == "XGBoost UBJ" and "2.0.3" in found.detail


def test_lightgbm_text_is_recognised(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("tree\nversion=v4\nnum_class=1\n\nTree=0\nnum_leaves=1\n\nend of trees\n")
    assert recognise(path).name == "LightGBM text"


def test_numeric_npy_is_recognised_and_object_npy_is_not(tmp_path):
    np.save(tmp_path / "w.npy", np.arange(6.0).reshape(2, 3))
    objects = np.empty(1, dtype=object)
    objects[0] = {"a": 1}
    np.save(tmp_path / "o.npy", objects, allow_pickle=True)
    assert recognise(tmp_path / "w.npy").name == "NumPy .npy"
    assert recognise(tmp_path / "o.npy") is None


def test_a_pickle_named_onnx_is_audited_as_a_pickle(tmp_path):
    path = tmp_path / "model.onnx"
    joblib.dump({"weights": np.ones(3)}, path)
    assert recognise(path) is None
    assert audit_model_file(path).safe_to_load


def _polyglot_onnx(marker) -> bytes:
    """An ONNX ModelProto whose first bytes are also a pickle calling os.system.

    As protobuf: model_version (field 5, key '(') = 41 (')'), then doc_string (field 6, key '2')
    of 0x6c bytes ('l'), which hold the pickle's opcodes, then ir_version and a graph.
    As a pickle: MARK, EMPTY_TUPLE, DUP, LIST, then the doc string's bytes: posix.system(...), STOP.
    """
    command = f"touch {marker}".encode()
    hidden = b"cposix\nsystem\n(S'" + command + b"'\ntR."
    assert len(hidden) <= 0x6C
    graph = _field(1, b"\x0a\x01x\x12\x01y\x22\x08Identity") + _field(2, b"graph")
    return b"()" + b"2l" + hidden.ljust(0x6C, b" ") + _varint(1 << 3) + _varint(8) + _field(7, graph)


def test_a_file_both_onnx_and_a_pickle_is_a_polyglot_and_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "model.onnx"
    path.write_bytes(_polyglot_onnx(marker))
    assert recognise(path).name == "ONNX"
    audit = audit_model_file(path)
    assert not audit.safe_to_load
    assert "is recognised as ONNX and is also a pickle naming posix.system (a polyglot" in audit.refusal()
    assert not marker.exists()


def test_a_sparse_huge_file_is_not_read_whole(tmp_path):
    from dialsgate.modelfile.formats import RECOGNISE_CAP
    from dialsgate.plainfiles import NotPlain

    path = tmp_path / "model.onnx"
    with open(path, "wb") as stream:
        stream.truncate(100 * 2**30)  # 100 GiB of holes: fstat says so, nothing is read
    with pytest.raises(NotPlain, match="RECOGNISE_CAP"):  # TooLargeToRecognise
        recognise(path)
    assert RECOGNISE_CAP < 100 * 2**30
    audit = audit_model_file(path)
    assert not audit.safe_to_load and "RECOGNISE_CAP" in audit.refusal()


def test_json_of_more_values_than_the_cap_is_not_parsed(tmp_path):
    """Parsed, a file of tiny values grew about 25-fold in memory: 5.3 GB for 200 MiB of ``{},``."""
    from dialsgate.modelfile.formats import STRUCTURE_CAP

    path = tmp_path / "model.json"
    path.write_bytes(b'{"weights": [' + b"{}," * STRUCTURE_CAP + b"{}]}")
    with pytest.raises(NotPlain, match="STRUCTURE_CAP"):
        recognise(path)
    audit = audit_model_file(path)
    assert not audit.safe_to_load and "STRUCTURE_CAP" in audit.refusal()
    # As large, XGBoost's own (a big booster): named by its first and last keys, and no pickle.
    path.write_bytes(b'{"learner": {"trees": [' + b"{}," * STRUCTURE_CAP + b'{}]}, "version": [2, 0, 3]}')
    found = recognise(path)
    assert found.name == "XGBoost JSON" and "XGBoost 2.0.3 (its first and last keys" in found.detail
    audit = audit_model_file(path)
    assert audit.safe_to_load and audit.format == found and audit.polyglot is None


def test_ubj_of_more_untyped_values_than_the_cap_is_not_parsed(tmp_path, monkeypatch):
    """At the cap, an array of 200 million nulls took 87 s; now a few seconds at most (here, a lower cap)."""
    from dialsgate.modelfile import formats

    monkeypatch.setattr(formats, "STRUCTURE_CAP", 1000)
    path = tmp_path / "model.ubj"
    path.write_bytes(b"{" + ubj_string("learner") + b"[" + b"Z" * 1001 + b"]" + ubj_string("version") + b"[i\x02]}")
    with pytest.raises(NotPlain, match="STRUCTURE_CAP"):
        recognise(path)
    path.write_bytes(b"{" + ubj_string("learner") + b"{" + b"}" + ubj_string("version") + b"[i\x02i\x00i\x03]}")
    assert recognise(path).name == "XGBoost UBJ"


def test_a_text_of_many_short_lines_is_not_split_whole(tmp_path):
    """The LightGBM reader split the whole text into lines before looking at its first: about 25
    times the file's size in memory (a 512 MiB file would have taken 13 GB)."""
    import tracemalloc

    path = tmp_path / "model.txt"
    path.write_bytes(b"ab\n" * 2_000_000)
    tracemalloc.start()
    try:
        assert recognise(path) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * path.stat().st_size, f"{peak:,} bytes for a file of {path.stat().st_size:,}"
    path.write_bytes(b"tree\r\nversion=v4\r\nnum_class=1\r\n" + b"ab\n" * 100 + b"end of trees\n")
    assert recognise(path).detail == "LightGBM model text, format v4"


def test_an_npz_too_large_to_recognise_is_audited_saying_so(tmp_path, monkeypatch):
    from dialsgate.modelfile import formats, pickle_audit

    np.savez(tmp_path / "weights.npz", w=np.arange(100.0))
    assert pickle_audit.folder_pickles(tmp_path, tmp_path / "model.joblib") == []
    monkeypatch.setattr(formats, "RECOGNISE_CAP", 100)
    assert pickle_audit.folder_pickles(tmp_path, tmp_path / "model.joblib") == [tmp_path / "weights.npz"]
