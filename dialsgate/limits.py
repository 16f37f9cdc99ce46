"""The gate's own limits on the host side: how long it waits and how much it reads or builds.

A folder under test is hostile input: a handler that never answers, an answer line of gigabytes,
Dims that would make the gate allocate tens of gigabytes, must each fail one row naming the limit,
never hang the gate or exhaust this machine. Each limit has a default (docs/checks.md, "Limits")
and an environment variable to change it (a slow model on a slow runner, a larger batch).

    limit(name) -> float | int      # the value in force (environment, else default)
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    variable: str  # DIALSGATE_...
    default: float
    unit: str  # "s", "bytes", "elements", "characters"
    what: str


LIMITS = {
    "worker_load_timeout": Limit(
        "DIALSGATE_WORKER_LOAD_TIMEOUT", 120, "s",
        "one worker operation that imports the folder or loads the model file (load: the handler's import and load(); "
        "resolve; load_model_strictly; installed)",
    ),
    "worker_call_timeout": Limit(
        "DIALSGATE_WORKER_CALL_TIMEOUT", 60, "s", "one request to a loaded handler (predict, metadata)"
    ),
    "worker_answer_bytes": Limit(
        "DIALSGATE_WORKER_ANSWER_BYTES", 64 * 2**20, "bytes", "one answer line of a worker process"
    ),
    "http_answer_bytes": Limit(
        "DIALSGATE_HTTP_ANSWER_BYTES", 64 * 2**20, "bytes",
        "one HTTP answer body of the served container (tritonclient: its declared Content-Length)"
    ),
    "request_timeout": Limit(
        "DIALSGATE_REQUEST_TIMEOUT", 120, "s", "one HTTP or tritonclient request to the served container"
    ),
    "elements_per_lumisection": Limit(
        "DIALSGATE_MAX_ELEMENTS_PER_LS", 2_000_000, "elements",
        "values of one lumisection over every input and metadata input (the product of each input's Dims after the "
        "batch axis): the sample data and every request the gate builds from the Dims",
    ),
    "explore_request_elements": Limit(
        "DIALSGATE_MAX_EXPLORE_ELEMENTS", 2_000_000, "elements",
        "values of one request of check_contract_explored: its long run holds 3,000 lumisections, or as many as fit",
    ),
    "explore_seconds": Limit(
        "DIALSGATE_EXPLORE_SECONDS", 120, "s",
        "the requests check_contract_explored generates (its explicit requests come first); later ones are not sent",
    ),
    "reference_batch_bytes": Limit(
        "DIALSGATE_MAX_BATCH_BYTES", 512 * 2**20, "bytes", "the reference batch file, and the arrays it holds once read"
    ),
    "source_file_bytes": Limit(
        "DIALSGATE_MAX_SOURCE_BYTES", 8 * 2**20, "bytes", "one .py file of the folder read for the static checks"
    ),
    "package_bytes": Limit(
        "DIALSGATE_MAX_PACKAGE_BYTES", 256 * 2**20, "bytes", "the zip of `dialsgate check --package` (read whole, compressed)"
    ),
    "package_member_bytes": Limit(
        "DIALSGATE_MAX_PACKAGE_MEMBER_BYTES", 1 * 2**30, "bytes",
        "one member of the zip once inflated (its declared size, then the bytes counted while inflating)",
    ),
    "package_unpacked_bytes": Limit(
        "DIALSGATE_MAX_PACKAGE_UNPACKED_BYTES", 2 * 2**30, "bytes", "every member of the zip together once inflated"
    ),
    "package_members": Limit("DIALSGATE_MAX_PACKAGE_MEMBERS", 10_000, "members", "members of the zip (files and folders)"),
    "printed_characters": Limit(
        "DIALSGATE_MAX_PRINTED_CHARS", 200, "characters", "one string of the template printed in a row or the terminal"
    ),
}  # fmt: skip


def limit(name: str) -> float:
    """The value of a limit: its environment variable when set to a positive number, else its default."""
    entry = LIMITS[name]
    raw = os.environ.get(entry.variable, "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{entry.variable}={raw!r}: expected a positive number ({entry.unit})") from None
        if value > 0:
            return int(value) if entry.unit != "s" else value
        raise ValueError(f"{entry.variable}={raw!r}: expected a positive number ({entry.unit})")
    return entry.default


def shorten(text: object, name: str = "printed_characters") -> str:
    """A string of the template cut to the printing cap, with an ellipsis saying how much was cut
    (only cut: escaping control characters is the printer's)."""
    text = str(text)
    cap = int(limit(name))
    if len(text) <= cap:
        return text
    return f"{text[:cap]}… ({len(text) - cap:,} more characters)"
