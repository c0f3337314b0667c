"""Binance public-data files (data.binance.vision layout) built from real data in tests/data.

No data.binance.vision download was available, so the values of real captures and dumps
are re-laid in Binance's documented column layout: trades and bookTicker from the
2024-08-08 BTCUSDT websocket capture (same fields, same units), fundingRate and klines
from freqtrade's Binance XRP/USDT futures history. Columns the sources lack
(klines quote volume, trade counts) are left empty.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import zipfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from tests.importers.helpers import DATA
from tests.realdata import realdata

CAPTURE = DATA / "binance_usdm_btcusdt_20240808_head12000.gz"
HEADERS = {
    "trades": "id,price,qty,quote_qty,time,is_buyer_maker",
    "aggTrades": "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker",
    "bookTicker": "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time",
    "fundingRate": "calc_time,funding_interval_hours,last_funding_rate",
    "klines": "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore",
}


def capture_messages(kind: str) -> list[dict]:
    """The `data` objects of one event type (trade, bookTicker) in the capture slice."""
    out = []
    with gzip.open(CAPTURE, "rt") as fh:
        for line in fh:
            obj = json.loads(line.split(" ", 1)[1])
            d = obj.get("data", {})
            if d.get("e") == kind:
                out.append(d)
    return out


def trade_rows() -> list[str]:
    return [
        f"{d['t']},{d['p']},{d['q']},{Decimal(d['p']) * Decimal(d['q'])},{d['T']},"
        f"{'true' if d['m'] else 'false'}"
        for d in capture_messages("trade")
    ]


def agg_trade_rows() -> list[str]:
    # One trade per aggregate: first and last trade id are the trade's own.
    return [
        f"{d['t']},{d['p']},{d['q']},{d['t']},{d['t']},{d['T']},{'true' if d['m'] else 'false'}"
        for d in capture_messages("trade")
    ]


def book_ticker_rows() -> list[str]:
    return [
        f"{d['u']},{d['b']},{d['B']},{d['a']},{d['A']},{d['T']},{d['E']}"
        for d in capture_messages("bookTicker")
    ]


def _ms(text: str) -> int:
    return int(round(datetime.fromisoformat(text).timestamp() * 1000))


def funding_rows() -> list[str]:
    with open(realdata("freqtrade_XRP_USDT_USDT-8h-funding_rate.csv")) as fh:
        return [f"{_ms(r['date'])},8,{r['open']}" for r in csv.DictReader(fh)]


def kline_rows() -> list[str]:
    with open(realdata("freqtrade_XRP_USDT_USDT-1h-futures.csv")) as fh:
        return [
            f"{_ms(r['date'])},{r['open']},{r['high']},{r['low']},{r['close']},{r['volume']},"
            f"{_ms(r['date']) + 3_600_000 - 1},,,,,0"
            for r in csv.DictReader(fh)
        ]


def write_zip(
    path: Path, dataset: str, rows: list[str], header: bool = True, checksum: bool = True
) -> Path:
    """`path` (a .zip) holding one CSV like data.binance.vision's, plus `<zip>.CHECKSUM`."""
    body = io.StringIO()
    if header:
        body.write(HEADERS[dataset] + "\n")
    body.write("\n".join(rows) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(path.name[:-4] + ".csv", body.getvalue())
    if checksum:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        (path.parent / (path.name + ".CHECKSUM")).write_text(f"{digest}  {path.name}\n")
    return path
