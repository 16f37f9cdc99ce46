"""What a handler did with one request, whichever transport carried it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Outcome:
    """What the handler did with one request: a response dict, or an error with its HTTP status."""

    response: dict | None = None
    status: int = 200
    error: str | None = None
