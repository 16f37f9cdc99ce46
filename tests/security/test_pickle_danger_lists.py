"""Every global that modelscan's, fickling's and picklescan's published danger lists name is refused.

The audit passes only what its allowlist knows to be safe, so it needs no danger list; this test
shows that the lists of the public scanners are covered anyway, and that a dotted name cannot walk
around them. For each entry of ``data/published_pickle_danger_lists.toml`` (a whole module stands
for one example name of it) it writes, opcode by opcode (nothing is ever pickled for real, nothing
is imported), small pickles that:

* call the global: ``GLOBAL`` + ``REDUCE`` under protocol 2, ``STACK_GLOBAL`` + ``REDUCE`` under 4;
* reach it through an innocent-looking module: ``STACK_GLOBAL`` ('collections', 'os.system'),
  which protocol 4's unpickler resolves attribute by attribute;
* only carry it, as a value of a dict ({'func': os.system}), for a handler to call later;

and asserts that ``audit_model_file`` refuses each, naming the global.
"""

from __future__ import annotations

import _compat_pickle
import pickletools
import struct
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from dialsgate.modelfile.pickle_audit import audit_model_file

LISTS = Path(__file__).resolve().parent / "data" / "published_pickle_danger_lists.toml"
ENTRIES = tomllib.loads(LISTS.read_text())["global"]
#: modules that an allowlist of scientific classes is likely to trust: the dotted variants start there
CARRIERS = ("collections", "numpy", "sklearn.base")
ARGUMENT = "touch /tmp/dialsgate-attack-danger-list-ran"  # never run: the pickles are only audited


# --------------------------------------------------------------------------- opcodes


def short_unicode(text: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4): one length byte, UTF-8."""
    data = text.encode()
    assert len(data) < 256
    return b"\x8c" + bytes([len(data)]) + data


def binunicode(text: str) -> bytes:
    """BINUNICODE (protocol 2): four length bytes, UTF-8."""
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def global_opcode(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


PROTO2, PROTO4 = b"\x80\x02", b"\x80\x04"
STACK_GLOBAL, TUPLE1, REDUCE, EMPTY_DICT, SETITEM, STOP = b"\x93", b"\x85", b"R", b"}", b"s", b"."
MARK, INST_TAIL, OBJ = b"(", b"i", b"o"


def call_protocol_2(module: str, name: str) -> bytes:
    return PROTO2 + global_opcode(module, name) + binunicode(ARGUMENT) + TUPLE1 + REDUCE + STOP


def call_protocol_4(module: str, name: str) -> bytes:
    return PROTO4 + short_unicode(module) + short_unicode(name) + STACK_GLOBAL + short_unicode(ARGUMENT) + TUPLE1 + REDUCE + STOP


def passed_in_dict(module: str, name: str) -> bytes:
    return (
        PROTO4 + EMPTY_DICT + short_unicode("func") + short_unicode(module) + short_unicode(name) + STACK_GLOBAL + SETITEM + STOP
    )


def entry_global(entry: dict) -> tuple[str, str]:
    return entry["module"], entry["example"] if entry["name"] == "*" else entry["name"]


def accepted_names(module: str, name: str, protocol: int) -> set[str]:
    """How a refusal may name the global: as written, or as Python 3 resolves a protocol 0-2 name
    (``__builtin__.eval`` is ``builtins.eval`` for the unpickler)."""
    names = {f"{module}.{name}"}
    if protocol < 3:
        fixed_module, fixed_name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        fixed_module = _compat_pickle.IMPORT_MAPPING.get(fixed_module, fixed_module)
        names.add(f"{fixed_module}.{fixed_name}")
    return names


def variants(entry: dict):
    module, name = entry_global(entry)
    carrier = CARRIERS[sum(map(ord, module + name)) % len(CARRIERS)]
    yield "call-protocol-2", call_protocol_2(module, name), accepted_names(module, name, 2)
    yield "call-protocol-4", call_protocol_4(module, name), accepted_names(module, name, 4)
    yield f"dotted-via-{carrier}", call_protocol_4(carrier, f"{module}.{name}"), accepted_names(module, name, 4)
    yield "passed-in-dict", passed_in_dict(module, name), accepted_names(module, name, 4)


CASES = [
    pytest.param(data, names, id=f"{'.'.join(entry_global(entry))}-{variant}")
    for entry in ENTRIES
    for variant, data, names in variants(entry)
]


def assert_refused(path: Path, data: bytes, names: set[str]) -> None:
    # The bytes are one well-formed pickle, read to its STOP (else the test would prove nothing).
    opcodes = list(pickletools.genops(data))
    assert opcodes[-1][0].name == "STOP" and opcodes[-1][2] == len(data) - 1
    path.write_bytes(data)
    refusal = audit_model_file(path).refusal()
    assert refusal is not None, f"the audit passed a pickle using {sorted(names)[0]}"
    assert any(name in refusal for name in names), f"the refusal does not name {sorted(names)}: {refusal}"


# --------------------------------------------------------------------------- the lists


def test_the_lists_were_read():
    """The data file holds the three lists (guards against an empty or truncated file)."""
    lists = {source.split()[0] for entry in ENTRIES for source in entry["lists"]}
    assert lists == {"modelscan", "fickling", "picklescan"}
    assert len(ENTRIES) > 150
    assert all(entry["name"] != "*" or entry.get("example") for entry in ENTRIES)
    as_written = {(entry["module"], entry["name"]) for entry in ENTRIES}
    assert ("posix", "*") in as_written and ("builtins", "eval") in as_written and ("pkgutil", "resolve_name") in as_written


@pytest.mark.parametrize(("data", "names"), CASES)
def test_published_danger_is_refused(data, names, tmp_path):
    assert_refused(tmp_path / "model.joblib", data, names)


# --------------------------------------------------------------------------- other ways to reach a global


def inst_call(module: str, name: str) -> bytes:
    """Protocol 0's INST: MARK, arguments, ``i module\\nname\\n`` calls the global with them."""
    return MARK + b"V" + ARGUMENT.encode() + b"\n" + INST_TAIL + module.encode() + b"\n" + name.encode() + b"\n" + STOP


def obj_call(module: str, name: str) -> bytes:
    """Protocol 1's OBJ: MARK, the global, its arguments, OBJ calls it."""
    return PROTO2 + MARK + global_opcode(module, name) + binunicode(ARGUMENT) + OBJ + STOP


def dotted_global_protocol_4(carrier: str, module: str, name: str) -> bytes:
    """The text GLOBAL opcode with a dotted name: under a PROTO 4 header it resolves like STACK_GLOBAL."""
    return PROTO4 + global_opcode(carrier, f"{module}.{name}") + short_unicode(ARGUMENT) + TUPLE1 + REDUCE + STOP


def protocol_lowered_midstream(module: str, name: str) -> bytes:
    """A second PROTO opcode changes how later globals resolve (protocol 2 maps Python 2 names)."""
    return PROTO4 + PROTO2 + global_opcode(module, name) + binunicode(ARGUMENT) + TUPLE1 + REDUCE + STOP


OTHER_WAYS = [
    pytest.param(inst_call("posix", "system"), {"posix.system"}, id="INST-posix.system"),
    pytest.param(obj_call("posix", "system"), {"posix.system"}, id="OBJ-posix.system"),
    pytest.param(dotted_global_protocol_4("logging", "os", "system"), {"os.system"}, id="GLOBAL-dotted-logging.os.system"),
    pytest.param(dotted_global_protocol_4("numpy", "os", "system"), {"os.system"}, id="GLOBAL-dotted-numpy.os.system"),
    pytest.param(call_protocol_4("codecs", "builtins.exec"), {"builtins.exec"}, id="STACK_GLOBAL-dotted-codecs.builtins.exec"),
    pytest.param(
        protocol_lowered_midstream("__builtin__", "eval"),
        {"__builtin__.eval", "builtins.eval"},
        id="PROTO-4-then-2-__builtin__.eval",
    ),
    pytest.param(
        protocol_lowered_midstream("__builtin__", "reduce"),
        {"__builtin__.reduce", "functools.reduce"},
        id="PROTO-4-then-2-__builtin__.reduce",
    ),
]


@pytest.mark.parametrize(("data", "names"), OTHER_WAYS)
def test_other_opcodes_reaching_a_global_are_refused(data, names, tmp_path):
    assert_refused(tmp_path / "model.joblib", data, names)
