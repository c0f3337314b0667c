"""Values from users and to JSON, one rule each for the whole library: yes/no words,
and NaN/inf/NumPy/pandas values made into plain JSON."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def parse_bool(value: Any) -> bool:
    """True/False from a bool, a NumPy bool or a word (true/false, 1/0, yes/no, on/off in
    any case); anything else raises ValueError.

    >>> parse_bool("Yes"), parse_bool("0"), parse_bool(True)
    (True, False, True)
    """
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_ without importing NumPy here
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
    raise ValueError(f"not a yes/no value: {value!r} (use true/false, yes/no, on/off or 1/0)")


def json_safe(obj: Any) -> Any:
    """`obj` with every value JSON can hold: NaN and infinities become null (they are not
    JSON), NumPy scalars plain numbers, timestamps ISO text, NaT null; dicts, lists and
    tuples are walked.

    >>> json_safe({"a": float("nan"), "b": [1.5, float("inf")]})
    {'a': None, 'b': [1.5, None]}
    """
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else str(k)): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if type(obj).__name__ in ("NaTType", "NAType"):
        return None
    if isinstance(obj, _dt.datetime | _dt.date):  # also pandas.Timestamp
        return obj.isoformat()
    if hasattr(obj, "item") and not isinstance(obj, (bytes, bytearray)):
        try:
            return json_safe(obj.item())  # NumPy scalars
        except (ValueError, TypeError):
            pass
    if hasattr(obj, "tolist"):
        return json_safe(obj.tolist())  # NumPy arrays
    return str(obj)
