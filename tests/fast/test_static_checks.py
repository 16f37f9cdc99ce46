"""The static checks on tiny model folders: Python version (vermin) and the template's Resources.

Each check is seen passing on a sound folder and failing, naming the defect, on a broken one.
"""

from __future__ import annotations

import textwrap
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from dialsgate.checks import CheckFailed, fast_checks
from dialsgate.checks.static import check_python_version_compatible, check_resources_plausible, target_python
from dialsgate.checks.subject import Subject
from dialsgate.contract.quantity import QuantityError, parse_quantity
from dialsgate.contract.resources import declared_memory_limit_bytes
from dialsgate.contract.template import load_contract

PROPERTIES = {
    "Name": "tiny",
    "Image": "registry.cern.ch/docker.io/seldonio/mlserver:1.5.0",
    "BuiltinThreshold": True,
    "FlaggingKey": "Flag",
    "InputSignature": [{"Name": "X", "MonitoringElement": "A/B/x", "DataType": "TYPE_FP32", "Dims": [-1, 3]}],
    "OutputSignature": [{"Name": "Flag", "DataType": "TYPE_BOOL", "Dims": [-1]}],
    "CodeUri": "server/",
    "Handler": "app.Handler",
    "ModelUri": "server/model.joblib",
}

#: A handler as the DIALS examples write them, with what 3.10 has: walrus, match, f-string
#: self-documentation, X | Y annotations, dataclass(slots, kw_only), zip(strict), parenthesised with.
COMPATIBLE_HANDLER = """
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

Batch: TypeAlias = "np.ndarray"


@dataclass(slots=True, kw_only=True)
class Settings:
    threshold: float | None = None


class Handler(MLModel):
    async def load(self) -> bool:
        import joblib

        self.model = joblib.load(self.settings.parameters.uri)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        data: list[float] | None = payload.inputs[0].data.root
        if (n := len(data or [])) == 0:
            raise ValueError(f"{n=}: empty request")
        match payload.inputs[0].datatype:
            case "FP32" | "FP64":
                x = np.asarray(data, dtype=np.float32).reshape(-1, 3)
            case other:
                raise ValueError(f"unexpected datatype {other}")
        flags = [bool(a > b) for a, b in zip(x[:, 0], x[:, 1], strict=True)]
        with (open("/dev/null") as sink, open("/dev/null") as other_sink):
            json.dump({"n": n}, sink)
        return InferenceResponse(model_name=self.name, outputs=[ResponseOutput(name="Flag", shape=[len(flags)], datatype="BOOL", data=flags)])

    def describe(self) -> dict[str, Any]:
        return {"bits": int.bit_count(7), "name": "tiny".removeprefix("t")}
"""


def make_folder(root: Path, files: dict[str, str], resources: dict | None = None) -> SimpleNamespace:
    """A template plus its server folder under ``root``; returns a subject with its contract."""
    server = root / "server"
    server.mkdir(parents=True)
    (server / "model.joblib").write_bytes(b"")
    (server / "app.py").write_text(textwrap.dedent(COMPATIBLE_HANDLER))
    for name, text in files.items():
        (server / name).parent.mkdir(parents=True, exist_ok=True)
        (server / name).write_text(textwrap.dedent(text))
    properties = dict(PROPERTIES)
    if resources is not None:
        properties["Resources"] = resources
    template = {
        "TemplateFormatVersion": "2025-03-31",
        "Resources": {"Tiny": {"Type": "InferenceService::MLServer::SKLearn", "Properties": properties}},
    }
    (root / "template.yaml").write_text(yaml.safe_dump(template, sort_keys=False))
    return Subject(load_contract(root / "template.yaml"), {})


def failure(check, subject) -> str:
    with pytest.raises(CheckFailed) as caught:
        check(subject)
    return str(caught.value)


# --------------------------------------------------------------------------- Python version


def test_target_python_is_the_images():
    assert target_python(SimpleNamespace(image="registry.cern.ch/docker.io/seldonio/mlserver:1.5.0")) == (3, 10)


def test_compatible_folder_passes(tmp_path):
    subject = make_folder(
        tmp_path, {"helpers/__init__.py": "", "helpers/maths.py": "def f(x: int | None) -> int:\n    return x or 0\n"}
    )
    started = time.perf_counter()
    check_python_version_compatible(subject)
    print(f"vermin on {len(list(subject.contract.code_dir.rglob('*.py')))} files: {time.perf_counter() - started:.3f} s")


def test_pycache_is_not_judged(tmp_path):
    subject = make_folder(tmp_path, {"__pycache__/stale.py": "import tomllib\n"})
    check_python_version_compatible(subject)


@pytest.mark.parametrize(
    "source, line, construct",
    [
        ("import json\nimport tomllib\n", 2, "'tomllib' module"),
        ("try:\n    pass\nexcept* ValueError:\n    pass\n", 3, "except*"),
        ("from typing import Self\n", 1, "'typing.Self' member"),
        ("import typing\n\n\nclass A:\n    def me(self) -> typing.Self:\n        return self\n", 5, "'typing.Self' member"),
    ],
    ids=["tomllib", "except-star", "typing-Self", "evaluated-annotation"],
)
def test_newer_construct_fails_naming_file_line_and_versions(tmp_path, source, line, construct):
    subject = make_folder(tmp_path, {"pkg/newer.py": source})
    message = failure(check_python_version_compatible, subject)
    assert f"pkg/newer.py:{line}" in message, message
    assert construct in message, message
    assert "needs 3.11" in message and "the image has Python 3.10" in message, message
    assert "app.py" not in message, f"the compatible handler was flagged too: {message}"


def test_a_module_too_costly_to_parse_is_not_judged_and_says_so(tmp_path, monkeypatch):
    """8 MiB of ``0,`` (within the read cap) took the gate 82 s and 7.5 GB of syntax trees: past
    PARSE_TOKENS_CAP nothing parses it, vermin neither, and the row says which file and why."""
    import ast

    from dialsgate import pysource

    subject = make_folder(tmp_path, {"weights.py": "WEIGHTS = [" + "0," * (pysource.PARSE_TOKENS_CAP // 2 + 1) + "]\n"})
    built, parse = [], ast.parse
    monkeypatch.setattr(ast, "parse", lambda source, *args, **kwargs: built.append(len(source)) or parse(source, *args, **kwargs))
    try:
        message = failure(check_python_version_compatible, subject)
    finally:
        monkeypatch.undo()  # before pytest reads any source again
    assert max(built) < pysource.PARSE_TOKENS_CAP, "a syntax tree of weights.py was built (the handler's are small)"
    assert (
        "1 file(s) the gate could not judge for Python 3.10: weights.py: not judged: it holds about 1,000,006 tokens" in message
    )
    assert "need a Python newer" not in message


@pytest.mark.parametrize(
    "source",
    [b"", b"x", b" x ", b"a.b(1, 2.5e3)  # note\n", "é = 'ü'\n".encode(), b"\tif x:\n\t\treturn [0,0]\r\n", b"__x__=1;y=-2"],
)
def test_source_tokens_counts_as_the_tokens_pattern_does(source):
    import re

    from dialsgate.pysource import source_tokens

    assert source_tokens(source) == len(re.findall(rb"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]", source))


def test_postponed_annotations_need_nothing(tmp_path):
    """With ``from __future__ import annotations`` 3.10 never evaluates ``typing.Self`` in a signature."""
    source = "from __future__ import annotations\n\nimport typing\n\n\nclass A:\n    def me(self) -> typing.Self:\n        return self\n"
    check_python_version_compatible(make_folder(tmp_path, {"later.py": source}))


GUARDED = {
    "try-import": "try:\n    import tomllib\nexcept ModuleNotFoundError:\n    import tomli as tomllib\n",
    "version-info": "import sys\n\nif sys.version_info >= (3, 11):\n    from typing import Self\nelse:\n    Self = object\n",
    "type-checking": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from typing import Self\n",
    "backport-builtin": (
        "import sys\n\nif sys.version_info < (3, 11):\n    from exceptiongroup import ExceptionGroup\n\n\n"
        "def fail(errors):\n    raise ExceptionGroup('several', errors)\n"
    ),
    "novermin-comment": "import tomllib  # novermin\n",
}


@pytest.mark.parametrize("source", GUARDED.values(), ids=GUARDED.keys())
def test_version_guarded_code_passes(tmp_path, source):
    """vermin does not follow guards; the check does (no false alarm on code that runs on 3.10)."""
    check_python_version_compatible(make_folder(tmp_path, {"guarded.py": source}))


def test_unparsable_file_fails(tmp_path):
    subject = make_folder(tmp_path, {"broken.py": "def f(:\n    pass\n"})
    message = failure(check_python_version_compatible, subject)
    assert "broken.py:1" in message and "syntax error" in message, message


# --------------------------------------------------------------------------- Resources


def test_quantities_parse_as_kubernetes_does():
    assert parse_quantity("250m") == Decimal("0.25")
    assert parse_quantity("0.1m") == Decimal("0.0001")
    assert parse_quantity("128Mi") == 128 * 1024**2
    assert parse_quantity("1G") == 10**9
    assert parse_quantity("2e3") == 2000
    assert parse_quantity(2) == 2 and parse_quantity(0.5) == Decimal("0.5")
    for bad in ("1K", "1gb", "NaN", " 1", "", "Mi", "1e", "1mi", True):
        with pytest.raises(QuantityError):
            parse_quantity(bad)


def test_no_resources_pass(tmp_path):
    subject = make_folder(tmp_path, {})
    check_resources_plausible(subject)
    assert declared_memory_limit_bytes(subject.contract) is None


def test_plausible_resources_pass(tmp_path):
    resources = {"Requests": {"cpu": "500m", "memory": "1Gi"}, "Limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"}}
    subject = make_folder(tmp_path, {}, resources)
    check_resources_plausible(subject)
    assert declared_memory_limit_bytes(subject.contract) == 2 * 1024**3


@pytest.mark.parametrize(
    "resources, words",
    [
        ({"Limits": {"memory": "250m"}}, ("Properties.Resources.Limits.memory", "'250m'", "0.25 bytes", "below")),
        ({"Requests": {"cpu": "0.1m"}}, ("Properties.Resources.Requests.cpu", "'0.1m'", "0.0001 cores", "1/10000 of a core")),
        ({"Limits": {"memory": "100Gi"}}, ("Limits.memory", "100 GiB", "above")),
        ({"Limits": {"cpu": "500"}}, ("Limits.cpu", "500 cores", "above")),
        ({"Requests": {"memory": "4Gi"}, "Limits": {"memory": "2Gi"}}, ("Requests.memory", "is above", "Limits.memory", "4 GiB", "2 GiB")),
        ({"Requests": {"cpu": "2"}, "Limits": {"cpu": "1"}}, ("Requests.cpu", "is above", "Limits.cpu")),
        ({"Limits": {"memory": "2GB"}}, ("Limits.memory", "'2GB'", "not a Kubernetes quantity")),
        ({"Limits": {"Memory": "2Gi"}}, ("Limits.Memory", "unknown key", "did you mean 'memory'")),
        ({"Limit": {"memory": "2Gi"}}, ("Resources.Limit", "unknown key")),
    ],
    ids=["memory-millibytes", "cpu-tenthousandth", "memory-huge", "cpu-no-m", "request-above-limit-memory",
         "request-above-limit-cpu", "not-a-quantity", "capital-key", "section-typo"],
)  # fmt: skip
def test_implausible_resources_fail_naming_field_and_value(tmp_path, resources, words):
    subject = make_folder(tmp_path, {}, resources)
    message = failure(check_resources_plausible, subject)
    missing = [word for word in words if word not in message]
    assert not missing, f"message lacks {missing}: {message}"
    assert "Resources.Tiny.Properties.Resources" in message


def test_memory_limit_for_the_server_layer(tmp_path):
    subject = make_folder(tmp_path, {}, {"Limits": {"memory": "1500M"}})
    assert declared_memory_limit_bytes(subject.contract) == 1_500_000_000
    broken = make_folder(tmp_path / "broken", {}, {"Limits": {"memory": "lots"}})
    with pytest.raises(QuantityError, match="Limits.memory"):
        declared_memory_limit_bytes(broken.contract)


def test_static_checks_are_registered(tmp_path):
    names = [check.id for check in fast_checks(make_folder(tmp_path, {}).contract)]
    assert "check_python_version_compatible" in names and "check_resources_plausible" in names


def test_memory_amounts_read_in_messages_whatever_their_type():
    from decimal import Decimal

    from dialsgate.contract.quantity import describe_bytes

    # The server layer passes the declared limit as whole bytes (int): "250m" is 0 of them.
    assert describe_bytes(0) == "0 bytes"
    assert describe_bytes(Decimal("0.25")) == "0.25 bytes"
    assert describe_bytes(128 * 2**20) == "128 MiB (134217728 bytes)"
