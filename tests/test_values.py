"""One yes/no rule and one JSON cleaner for the whole library."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from algo_trade.engine.api import Settings
from algo_trade.sweep.grid import parse_axis
from algo_trade.values import json_safe, parse_bool


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes", "Yes", " on "])
def test_true_words(word):
    assert parse_bool(word) is True


@pytest.mark.parametrize("word", ["false", "0", "no", "NO", "off"])
def test_false_words(word):
    assert parse_bool(word) is False


@pytest.mark.parametrize("bad", ["ja", "2", "", None, 1.0])
def test_other_values_refused(bad):
    with pytest.raises(ValueError):
        parse_bool(bad)


def test_every_place_agrees_on_yes_and_no():
    from algo_trade import strategies

    assert Settings.build(rebalance="yes").rebalance is True
    assert Settings.build(rebalance="no").rebalance is False
    strat = strategies.get("sma_cross")
    assert strat.resolve({"short": "yes"})["short"] is True
    assert strat.resolve({"short": "off"})["short"] is False
    assert parse_axis("yes,no") == [True, False] and parse_axis("1,0") == [1, 0]


def test_json_safe():
    got = json_safe(
        {
            "nan": float("nan"),
            "inf": np.float64("inf"),
            "i": np.int64(3),
            "ts": pd.Timestamp(0),
            "nat": pd.NaT,
            "arr": np.array([1.0, np.nan]),
            2: (np.bool_(True),),
        }  # fmt: skip
    )
    assert got == {"nan": None, "inf": None, "i": 3, "ts": "1970-01-01T00:00:00", "nat": None,
                   "arr": [1.0, None], "2": [True]}  # fmt: skip
    json.dumps(got, allow_nan=False)
    assert math.isnan(float("nan"))  # the input is not changed in place
