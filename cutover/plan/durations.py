"""Durations as plans write them: 90s, 15m, 2h, 1d, 1w (or a number of seconds)."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as 90s, 15m, 2h, 1d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _RE.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration: write e.g. 90s, 15m, 2h, 1d or 1w")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration: write e.g. 90s, 15m, 2h, 1d or 1w")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The largest unit that divides evenly: 7200 -> '2h', 90 -> '90s'."""
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def readable_duration(seconds: float) -> str:
    """A span for people, to the second: 123456.7 -> '1d 10h 17m 37s', 0.4 -> '0s'."""
    left = round(seconds)
    parts = []
    for unit in ("d", "h", "m", "s"):
        n, left = divmod(left, int(_UNITS[unit]))
        if n:
            parts.append(f"{n}{unit}")
    return " ".join(parts) or "0s"


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
