"""Request bodies cross to the handler as JSON text: written by orjson where its text reads back
to the values ``json.dumps`` would give (``dialsgate.protocol.jsontext``), and read in the worker
by orjson where it reads them as ``json.loads`` would (``worker_main._request_reader``). A bad
request's NaN, infinity, huge integer or lone surrogate must reach the handler as json sends it."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialsgate.environment.runtime import WORKER_SCRIPT
from dialsgate.protocol import jsontext

pytest.importorskip("orjson")


def _worker_module():
    spec = importlib.util.spec_from_file_location("dialsgate_worker_main", WORKER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the gate's own worker script: it defines, it runs nothing
    return module


READ_REQUEST = _worker_module()._request_reader()


def _as_json_reads_it(value):
    """The value as json's own text of it: types kept (1 is not 1.0), NaN comparable."""
    return json.dumps(value)


#: What a body may hold, bad requests included: every number json writes, text with escapes.
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=40,
)
EDGES = [
    {"data": [1, 2, float("nan")]},
    {"data": [float("inf"), -float("inf")]},
    {"data": [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30]},
    {"data": [1e308, 5e-324, 0.1, -0.0]},
    {"parameters": {"content_type": None}},
    {"name": "x\ud800y"},
    {"shape": [3, 1600], "data": list(range(4800))},
]


@given(VALUES)
def test_written_text_reads_back_as_json_dumps_text_does(value):
    assert _as_json_reads_it(json.loads(jsontext.dumps(value))) == _as_json_reads_it(json.loads(json.dumps(value)))


@pytest.mark.parametrize("value", EDGES, ids=range(len(EDGES)))
def test_edges_are_written_as_json_dumps_writes_them(value):
    assert _as_json_reads_it(json.loads(jsontext.dumps(value))) == _as_json_reads_it(value)


def test_what_json_cannot_write_fails_as_it_did():
    with pytest.raises(TypeError):
        jsontext.dumps({"data": [object()]})
    assert json.loads(jsontext.dumps({1: 2})) == {"1": 2}  # json writes a number key as text


@given(VALUES)
def test_the_worker_reads_a_line_as_json_loads_does(value):
    for line in (json.dumps(value).encode(), jsontext.dumps(value)):
        assert _as_json_reads_it(READ_REQUEST(line)) == _as_json_reads_it(json.loads(line))


@pytest.mark.parametrize(
    "line", [b"[1e400, -1e400]", b"[NaN, Infinity]", b"[18446744073709551616]", b'["\\ud800"]', b"[-9223372036854775809]"]
)
def test_the_worker_reads_what_orjson_would_misread_as_json_does(line):
    read = READ_REQUEST(line)
    assert _as_json_reads_it(read) == _as_json_reads_it(json.loads(line))
    assert not any(isinstance(item, float) and math.isfinite(item) and abs(item) > 2**62 for item in read)
