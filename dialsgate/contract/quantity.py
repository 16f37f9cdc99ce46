"""Kubernetes resource quantities ("250m", "1.5Gi", "2e3") parsed to exact numbers.

DIALS runs each model as a Kubernetes pod, so the template's ``Resources`` (``Requests`` and
``Limits``, ``cpu`` and ``memory``) are Kubernetes quantities. The grammar is the one of
k8s.io/apimachinery ``resource.Quantity``::

    <quantity>     ::= <sign>? <number> <suffix>?
    <number>       ::= <digits> | <digits> "." <digits>? | "." <digits>
    <suffix>       ::= <binarySI> | <decimalSI> | <decimalExponent>
    <binarySI>     ::= Ki | Mi | Gi | Ti | Pi | Ei             (powers of 1024)
    <decimalSI>    ::= n | u | m | k | M | G | T | P | E        (powers of 1000)
    <decimalExponent> ::= ("e" | "E") <sign>? <digits>

Why not ``kubernetes.utils.parse_quantity``: the official client (kubernetes 37.x) would bring
aiohttp, oauthlib, websocket-client, durationpy and a pydantic >= 2.14.2 floor into the fast
layer for one 60-line function, and it is more lenient than the API server (it accepts "1K",
"NaN", "Infinity", surrounding blanks), which would let a quantity Kubernetes refuses pass
here. This parser follows the API server's grammar; on every quantity that grammar accepts it
agrees with ``kubernetes.utils.parse_quantity`` (checked once against kubernetes 37.0.2).
"""

from __future__ import annotations

import re
from decimal import Decimal

BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
DECIMAL_SUFFIXES = {"n": -3, "u": -2, "m": -1, "": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}

_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?"
)


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(value) -> Decimal:
    """``"250m"`` -> Decimal('0.25'); ``"1Gi"`` -> Decimal(1073741824); ints and floats as they are.

    YAML may give a bare number (``cpu: 2``); Kubernetes accepts those too. Raises
    QuantityError for anything else (blanks, unknown suffixes such as "K" or "gb", NaN).
    """
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is a boolean, not a quantity")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError(f"{value!r} is not a finite quantity")
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise QuantityError(f"{value!r} ({type(value).__name__}) is not a quantity")
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise QuantityError(
            f"{value!r} is not a Kubernetes quantity (a number with an optional suffix: "
            "Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent like e3)"
        )
    number = Decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix in BINARY_SUFFIXES:
        return number * (Decimal(1024) ** BINARY_SUFFIXES[suffix])
    if suffix in DECIMAL_SUFFIXES:
        return number.scaleb(3 * DECIMAL_SUFFIXES[suffix])
    return number.scaleb(int(suffix[1:]))


def describe_bytes(value: Decimal | int) -> str:
    """A memory amount for a message: '0.25 bytes', '128 MiB (134217728 bytes)'."""
    value = Decimal(value)
    if value < 1024:
        return f"{value.normalize():f} bytes" if value != 1 else "1 byte"
    for unit, power in (("EiB", 6), ("PiB", 5), ("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        scale = Decimal(1024) ** power
        if value >= scale:
            return f"{(value / scale).quantize(Decimal('0.01')).normalize():f} {unit} ({int(value)} bytes)"
    return f"{int(value)} bytes"


def describe_cores(value: Decimal) -> str:
    """A CPU amount for a message: '0.0001 cores (a ten-thousandth of a core)', '2 cores'."""
    text = f"{value.normalize():f}"
    if 0 < value < 1:
        fraction = Decimal(1) / value
        if fraction == fraction.to_integral_value():
            return f"{text} cores (1/{int(fraction)} of a core)"
    return f"{text} core" + ("" if value == 1 else "s")
