"""A broken copy of a request body (``protocol.badrequests.replace_input``) changes one input of a
copy: the body it came from stays as it was, and nothing else is copied."""

from __future__ import annotations

import json

from dialsgate.protocol.badrequests import replace_input


def _body() -> dict:
    return {
        "id": "r1",
        "inputs": [
            {"name": "a", "shape": [2, 3], "datatype": "INT32", "data": list(range(6))},
            {"name": "b", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        ],
    }


def test_one_input_changes_in_the_copy_only():
    body = _body()
    before = json.dumps(body)
    broken = replace_input(body, "a", datatype="BYTES", data=["x"] * 6)
    assert json.dumps(body) == before
    assert broken["inputs"][0] == {"name": "a", "shape": [2, 3], "datatype": "BYTES", "data": ["x"] * 6}
    assert broken["inputs"][1] == body["inputs"][1] and broken["id"] == "r1"


def test_the_other_inputs_and_the_data_left_alone_are_not_copied():
    body = _body()
    broken = replace_input(body, "b", shape=[3])
    assert broken["inputs"][0] is body["inputs"][0]
    assert broken["inputs"][1]["data"] is body["inputs"][1]["data"]
    assert broken["inputs"][1] is not body["inputs"][1] and body["inputs"][1]["shape"] == [2]
