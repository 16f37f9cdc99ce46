"""Try a corpus folder's handler by hand, as MLServer loads it, independently of dialsgate.

    /tmp/corpus-serving/bin/python tests/gate/corpus/try_folder.py tests/gate/corpus/sklearn_nmf_plain

Run it in the serving image's package set (Python 3.10 + dialsgate/environment/profiles/mlserver-1.5.0/core.txt, see build_corpus.py).
It imports the handler from the folder's CodeUri only, builds ``ModelSettings`` as
``model-settings.json`` would (name, implementation, parameters.uri), awaits ``load()``, then sends
V2 requests built from template.yaml, flattened as DIALS sends them (the reference batch's maps
when there is one, plus the declared OMS metadata: BOOL true, increasing INT32 numbers, FP32
pileup 60): the valid request, an empty batch, nested data, a reversed batch, every LS alone,
and malformed requests that must raise ``InferenceError`` (HTTP 400) naming the broken input.
Prints one line per probe; exit status 1 when any probe fails. A folder whose expected.json has
``must_not_create`` (its model file runs code when loaded) is only loaded with ``--unsafe-load``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import yaml

DTYPES = {"BOOL": bool, "INT32": np.int32, "INT64": np.int64, "FP32": np.float32, "FP64": np.float64}


def signatures(entries, prefix: str = "") -> list[dict]:
    return [
        {"name": prefix + e["Name"], "datatype": str(e["DataType"]).removeprefix("TYPE_"), "dims": list(e["Dims"])}
        for e in entries or []
    ]


def read_template(folder: Path) -> dict:
    ((_, resource),) = yaml.safe_load((folder / "template.yaml").read_text())["Resources"].items()
    props = resource["Properties"]
    metadata = [sig for meta in props.get("InputMetadata") or [] for sig in signatures(meta["Attributes"], meta["Name"] + "__")]
    return {
        "props": props,
        "inputs": signatures(props["InputSignature"]),
        "metadata": metadata,
        "outputs": signatures(props["OutputSignature"]),
    }


def sample_arrays(folder: Path, template: dict, n: int = 6) -> dict[str, np.ndarray]:
    batch = folder / "reference_batch.npz"
    arrays = {}
    if batch.is_file():
        with np.load(batch) as archive:
            arrays = {sig["name"]: archive[sig["name"]] for sig in template["inputs"]}
    else:
        rng = np.random.default_rng(1)
        for sig in template["inputs"]:
            arrays[sig["name"]] = rng.poisson(400, size=[n, *sig["dims"][1:]]).astype(DTYPES[sig["datatype"]])
    n = len(next(iter(arrays.values())))
    for sig in template["metadata"]:
        attribute = sig["name"].split("__", 1)[1]
        if sig["datatype"] == "BOOL":
            arrays[sig["name"]] = np.ones(n, dtype=bool)
        elif sig["datatype"].startswith("INT"):
            arrays[sig["name"]] = (np.arange(n) + (386_924 if attribute == "run_number" else 101)).astype(DTYPES[sig["datatype"]])
        else:
            arrays[sig["name"]] = np.full(n, 60.0, dtype=DTYPES[sig["datatype"]])
    return arrays


def body_of(template: dict, arrays: dict, flatten: bool = True, request_id: str = "corpus-1") -> dict:
    datatypes = {sig["name"]: sig["datatype"] for sig in template["inputs"] + template["metadata"]}
    inputs = []
    for name, array in arrays.items():
        array = np.asarray(array)
        data = array.ravel().tolist() if flatten else array.tolist()
        inputs.append({"name": name, "shape": list(array.shape), "datatype": datatypes[name], "data": data})
    return {"id": request_id, "inputs": inputs}


def replaced(body: dict, name: str, **changes) -> dict:
    broken = copy.deepcopy(body)
    for item in broken["inputs"]:
        if item["name"] == name:
            item.update(changes)
    return broken


def without(body: dict, name: str) -> dict:
    return {**body, "inputs": [item for item in body["inputs"] if item["name"] != name]}


class Handler:
    """The folder's handler class, loaded from CodeUri as MLServer would load model-settings.json."""

    def __init__(self, folder: Path, template: dict):
        from mlserver.settings import ModelParameters, ModelSettings

        props = template["props"]
        code = (folder / props["CodeUri"]).resolve()
        sys.dont_write_bytecode = True
        sys.path.insert(0, str(code))
        module_name, class_name = props["Handler"].rsplit(".", 1)
        handler_class = getattr(importlib.import_module(module_name), class_name)
        uri = str((folder / props["ModelUri"]).resolve())
        settings = ModelSettings(
            name=props["Name"], implementation=handler_class, parameters=ModelParameters(uri=uri, version="0.1.0")
        )
        self.model = handler_class(settings)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.model.load())

    def send(self, body: dict) -> tuple[int, object]:
        from mlserver.errors import MLServerError
        from mlserver.types import InferenceRequest

        request = InferenceRequest.parse_obj(body)
        try:
            response = self.loop.run_until_complete(self.model.predict(request))
        except MLServerError as error:
            return error.status_code, str(error)
        except Exception as error:
            return 500, f"{type(error).__name__}: {error}"
        return 200, json.loads(response.json())


def outputs(response: dict) -> dict[str, np.ndarray]:
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in response["outputs"]}


def agree(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal flags; scores equal to 1e-6 (BLAS may round a batch and a single LS differently)."""
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return bool(np.allclose(a, b, rtol=1e-6, atol=1e-6))
    return bool(np.array_equal(a, b))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--unsafe-load", action="store_true", help="load a model file that runs code when unpickled")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    expected = json.loads((folder / "expected.json").read_text())
    if expected.get("must_not_create") and not args.unsafe_load:
        parser.error(
            f"{folder.name}: loading its model file runs code (creates {expected['must_not_create']}); pass --unsafe-load to do it anyway"
        )
    template = read_template(folder)
    handler = Handler(folder, template)
    arrays = sample_arrays(folder, template)
    n = len(next(iter(arrays.values())))
    body = body_of(template, arrays)
    failures = []

    def probe(label: str, ok: bool, detail: object = "") -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {label}{': ' + str(detail)[:200] if detail != '' else ''}")
        if not ok:
            failures.append(label)

    status, answer = handler.send(body)
    probe("valid flattened request answered", status == 200, answer if status != 200 else "")
    if status != 200:
        return 1
    got = {o["name"]: (o["datatype"], o["shape"]) for o in answer["outputs"]}
    want = {sig["name"]: (sig["datatype"], [n]) for sig in template["outputs"]}
    probe("outputs exactly the OutputSignature (names, datatypes, shapes)", got == want, f"got {got}, want {want}")
    probe("response id echoes the request id", answer.get("id") == body["id"], answer.get("id"))
    flags = outputs(answer)[template["props"]["FlaggingKey"]] if template["props"].get("FlaggingKey") else None
    batch = folder / "reference_batch.npz"
    if batch.is_file() and flags is not None:
        with np.load(batch) as archive:
            if "expected_flag" in archive.files:
                probe(
                    "flags equal the reference batch's expected_flag",
                    np.array_equal(flags, archive["expected_flag"]),
                    f"{flags.tolist()} vs {archive['expected_flag'].tolist()}",
                )

    status, nested = handler.send(body_of(template, arrays, flatten=False))
    probe("nested data gives the same answer", status == 200 and nested["outputs"] == answer["outputs"], nested)
    status, reversed_answer = handler.send(body_of(template, {k: v[::-1] for k, v in arrays.items()}))
    same = status == 200 and all(agree(v[::-1], outputs(reversed_answer)[k]) for k, v in outputs(answer).items())
    probe("reversed batch reverses the outputs", same, reversed_answer if status != 200 else "")
    alone = [handler.send(body_of(template, {k: v[i : i + 1] for k, v in arrays.items()})) for i in range(n)]
    singles = {k: np.concatenate([outputs(a)[k] for s, a in alone if s == 200]) for k in outputs(answer)}
    probe(
        "each LS alone answers as in the batch",
        all(s == 200 for s, _ in alone) and all(agree(singles[k], v) for k, v in outputs(answer).items()),
        {k: float(np.max(np.abs(singles[k].astype(float) - v))) for k, v in outputs(answer).items()},
    )
    status, empty = handler.send(body_of(template, {k: v[:0] for k, v in arrays.items()}))
    probe(
        "empty batch (N=0) answers empty outputs",
        status == 200 and all(o["shape"] == [0] and o["data"] == [] for o in empty["outputs"]),
        empty,
    )
    status, extra = handler.send(
        {**body, "inputs": body["inputs"] + [{"name": "other_metadata__x", "shape": [n], "datatype": "FP32", "data": [1.0] * n}]}
    )
    probe("an undeclared metadata input a__b is ignored", status == 200 and extra["outputs"] == answer["outputs"], extra)

    first = template["inputs"][0]["name"]
    item = next(i for i in body["inputs"] if i["name"] == first)
    data = list(item["data"])
    malformed = {
        f"missing {first}": (without(body, first), first),
        "unknown input": (
            {**body, "inputs": body["inputs"] + [{**item, "name": "not_a_template_input"}]},
            "not_a_template_input",
        ),
        f"{first} as FP64": (replaced(body, first, datatype="FP64"), first),
        f"{first} as BYTES": (replaced(body, first, datatype="BYTES", data=["x"] * len(data)), first),
        f"{first} one bin wider": (
            replaced(
                body,
                first,
                shape=[*item["shape"][:-1], item["shape"][-1] + 1],
                data=data + [0] * int(np.prod(item["shape"][:-1])),
            ),
            first,
        ),
        f"{first} one value short": (replaced(body, first, data=data[:-1]), first),
        f"{first} non-numeric": (replaced(body, first, data=["counts"] * len(data)), first),
        f"{first} negative counts": (replaced(body, first, data=[-1 - int(v) for v in data]), first),
        f"{first} NaN": (replaced(body, first, data=[float("nan")] + [float(v) for v in data[1:]]), first),
        f"{first} fractional counts": (replaced(body, first, data=[0.5] + data[1:]), first),
    }
    for sig in template["metadata"]:
        name = sig["name"]
        meta = next(i for i in body["inputs"] if i["name"] == name)
        malformed[f"missing {name}"] = (without(body, name), name)
        malformed[f"{name} wrong datatype"] = (
            replaced(body, name, datatype="BYTES" if sig["datatype"] != "BYTES" else "FP32", data=["x"] * n),
            name,
        )
        malformed[f"{name} wrong shape"] = (replaced(body, name, shape=[n, 1]), name)
        malformed[f"{name} one value short"] = (replaced(body, name, shape=[n - 1], data=meta["data"][:-1]), name)
        malformed[f"{name} non-numeric"] = (replaced(body, name, data=["x"] * n), name)
        if sig["datatype"] != "BOOL":
            malformed[f"{name} NaN"] = (replaced(body, name, data=[float("nan")] * n), name)
            malformed[f"{name} negative"] = (replaced(body, name, data=[-5] * n), name)
        else:
            malformed[f"{name} numbers"] = (replaced(body, name, data=[3.5] * n), name)
    for label, (broken, name) in malformed.items():
        status, error = handler.send(broken)
        probe(f"refused with 400 naming the input: {label}", status == 400 and name in str(error), f"HTTP {status}: {error}")

    metadata_names = {sig["name"].split("__", 1)[1]: sig["name"] for sig in template["metadata"]}
    if {"bpix_ready", "pileup"} <= set(metadata_names) and flags is not None and flags.any():
        for label, name, value in (("bpix_ready false", "bpix_ready", False), ("pileup 20", "pileup", 20.0)):
            status, filtered = handler.send(replaced(body, metadata_names[name], data=[value] * n))
            probe(f"{label}: nothing flagged", status == 200 and not outputs(filtered)["Flag"].any(), filtered)
    print(f"{folder.name}: {len(failures)} of the probes failed" if failures else f"{folder.name}: every probe passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
