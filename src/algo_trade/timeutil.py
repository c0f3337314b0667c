"""Parse user times and durations into int64 nanoseconds (UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np

from algo_trade.errors import ConfigError

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "min": 60 * NS_PER_S,
    "h": 3_600 * NS_PER_S,
    "d": NS_PER_DAY,
    "w": 7 * NS_PER_DAY,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|min|m|h|d|w)\s*$")


def parse_duration_ns(text: str | int) -> int:
    """'1s' -> 1_000_000_000; '100ms', '8h', '7d', '1w' also work.

    >>> parse_duration_ns("100ms")
    100000000
    """
    if isinstance(text, int):
        return text
    m = _DURATION.match(str(text))
    if not m:
        raise ConfigError(
            f"bad duration {text!r}: use a number and a unit, e.g. 500ms, 1s, 5m, 8h, 7d"
        )
    value = int(round(float(m.group(1)) * _UNITS_NS[m.group(2)]))
    if value <= 0:
        raise ConfigError(f"bad duration {text!r}: it must be positive")
    return value


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_YEAR = re.compile(r"\d{4}")


def parse_time_ns(text: str | int | datetime | np.datetime64) -> int:
    """Parse an ISO date/time (UTC unless it says otherwise), a bare year, or an int of ns
    since epoch. Times must fit int64 ns (1677-09-22 .. 2262-04-11).

    >>> parse_time_ns("2024-01-01")
    1704067200000000000
    >>> parse_time_ns("2024") == parse_time_ns("2024-01-01")
    True
    """
    if isinstance(text, (int, np.integer)):
        return _in_range(int(text), text)
    if isinstance(text, np.datetime64):
        return _in_range(int(text.astype("datetime64[ns]").astype(np.int64)), text)
    if isinstance(text, datetime):
        dt = text
    else:
        s = str(text).strip()
        if _YEAR.fullmatch(s):  # "2024" is the year, not 2024 ns after 1970
            s += "-01-01"
        elif s.lstrip("-").isdigit() and s.isascii():
            return _in_range(int(s), text)
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"bad time {text!r}: use ISO format like 2024-01-01 or 2024-01-01T12:00:00Z"
            ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        seconds = int(dt.timestamp())
    except (OverflowError, OSError, ValueError):
        seconds = INT64_MAX  # beyond what the platform can convert: refused below
    return _in_range(seconds * NS_PER_S + dt.microsecond * 1_000, text)


def _in_range(ns: int, text: object) -> int:
    if not INT64_MIN < ns <= INT64_MAX - NS_PER_DAY:
        raise ConfigError(
            f"time {text!r} is outside what int64 nanoseconds hold (1677-09-22 .. 2262-04-10)"
        )
    return ns


def parse_range_ns(start: object, end: object) -> tuple[int, int]:
    """A half-open [start, end) range in ns; refuses missing or reversed bounds."""
    if start is None or end is None:
        raise ConfigError(
            "every read needs a time range: give both start and end (e.g. --start 2024-01-01 --end 2024-01-02)"
        )
    s, e = parse_time_ns(start), parse_time_ns(end)  # type: ignore[arg-type]
    if e <= s:
        raise ConfigError(f"end ({fmt_ns(e)}) must be after start ({fmt_ns(s)})")
    return s, e


def fmt_ns(ts_ns: int | None) -> str:
    """Format ns since epoch as ISO UTC with milliseconds."""
    if ts_ns is None:
        return "-"
    dt = datetime.fromtimestamp(ts_ns // NS_PER_S, tz=UTC)
    ms = (ts_ns % NS_PER_S) // 1_000_000
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def day_of_ns(ts_ns: int) -> str:
    """UTC calendar day of a timestamp, as YYYY-MM-DD."""
    return datetime.fromtimestamp(ts_ns // NS_PER_S, tz=UTC).strftime("%Y-%m-%d")
