"""JSON text of a request body, as Python's ``json.dumps`` writes it, faster; an answer's JSON
read with a bound on the objects it makes.

A lumisection batch is millions of integers; ``json.dumps`` writes 2,000,000 of them in about
0.28 s, orjson (a dependency of MLServer too) in 0.02 s. orjson writes NaN and infinity as
``null``, where ``json.dumps`` writes the tokens ``NaN`` and ``Infinity`` that MLServer's parser
and the worker read back as numbers; a bad request that sends NaN must arrive as NaN. So orjson's
text is used only when it holds no ``null`` at all (then no value was NaN, infinite or None), and
when orjson cannot write a value (an integer beyond 64 bits, a key that is not a string, ...);
everything else is ``json.dumps``'s, whose text parses to the same values.
"""

from __future__ import annotations

import json

import orjson


def dumps(value) -> bytes:
    """``json.dumps(value).encode()``, or orjson's text where it parses to the same values."""
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        text = b"null"  # orjson cannot write it: json.dumps decides (and raises what it raised)
    if b"null" in text:
        return json.dumps(value).encode()
    return text


#: At most this many values in one answer made into Python objects (``loads``). An answer is capped
#: in bytes (64 MiB), but parsed, 64 MiB of ``{},`` held 1.66 GB; a model's answer to a batch of
#: lumisections holds a few values per lumisection.
ANSWER_VALUES_CAP = 4_000_000


class TooManyValues(ValueError):
    """An answer of more JSON values than ANSWER_VALUES_CAP: not parsed."""


def loads(text: str | bytes, what: str):
    """``json.loads(text)``, refused (``TooManyValues``) past ANSWER_VALUES_CAP values. Every value
    but the first follows a comma or opens a container (commas in strings count too)."""
    comma, opened = (",", "[{") if isinstance(text, str) else (b",", b"[{")
    values = text.count(comma) + text.count(opened[0]) + text.count(opened[1])
    if values > ANSWER_VALUES_CAP:
        raise TooManyValues(
            f"{what} may hold {values:,} JSON values, more than {ANSWER_VALUES_CAP:,} (the cap of one answer's values): it was not parsed"
        )
    return json.loads(text)
