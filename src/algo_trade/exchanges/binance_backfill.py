"""Binance trades missed across a disconnect or restart, fetched back from the public
aggregated-trades endpoint (``GET /fapi/v1/aggTrades``, no API key).

The ``<s>@trade`` stream numbers trades consecutively per symbol (``t``). A jump from
the last trade id held (``lo``) to the next one received (``hi``) is a `Hole`: the trades
``lo+1 .. hi-1`` were published while we did not listen. The REST endpoint serves
*aggregated* trades: ``{"a": agg id, "p", "q", "f": first trade id, "l": last trade id,
"T": ms, "m"}``, the fills of one taker order at one price. It is paged by agg id
(``fromId``) but our ids are trade ids, so the first page is asked by time
(``startTime`` = the time of trade ``lo``), the next ones by ``fromId`` = last agg + 1,
until an aggregate reaches ``hi - 1``.

What becomes rows (`plan`):

- an aggregate wholly inside the hole: one row, id ``"<f>"`` when it is one trade
  (the very row the stream would have given), else ``"<f>-<l>"`` with the summed qty
  (the single fills' sizes are not published);
- an aggregate straddling an end of the hole (trades of one taker order, some held,
  some missed): one row for the missed ids, qty = the aggregate's qty minus the held
  trades' (exact, in decimal; the held trades share the aggregate's time, so the
  Normalizer keeps them: the `Hole`'s ``lo_tail``/``hi_tail``);
- trade ids no aggregate covers between two consecutive aggregates are not market trades
  (insurance fund, ADL) and were never on the stream: not missing.

Whatever could not be fetched (an HTTP error, more than `MAX_PAGES` pages) or computed
is returned as a gap, which the Normalizer records as a ``trades not backfilled`` event.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from decimal import Decimal

import orjson

AGG_TRADES_PATH = "/fapi/v1/aggTrades"
PAGE = 1000  # aggregates per request (the endpoint's maximum)
MAX_PAGES = 200  # 200,000 aggregates per hole; the rest is recorded as a gap
BURST_PAGES = 20  # pages asked back to back (weight 20 each); then PAGE_SPACING_S apart
PAGE_SPACING_S = 0.5  # keeps a long backfill under the 2,400 weight/min limit
READY_AFTER_NS = 1_000_000_000  # ask anyway if no later trade closes the hole's tail


@dataclass
class Hole:
    """Trade ids lo+1 .. hi-1 of `symbol` are missing. The tails hold the trades at the
    time of ``lo`` (``lo_T``, ms) and of ``hi`` (``hi_T``) as (first id, last id, qty)."""

    symbol: str
    lo: int
    lo_T: int
    lo_tail: list
    hi: int
    hi_T: int
    hi_tail: list
    seen_ns: int = 0  # receive time of trade hi
    hi_closed: bool = False  # a trade after hi_T arrived: hi_tail is complete
    asked: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("asked")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Hole:
        return cls(
            **{k: d[k] for k in ("symbol", "lo", "lo_T", "lo_tail", "hi", "hi_T", "hi_tail")},
            seen_ns=d.get("seen_ns", 0),
            hi_closed=True,  # a resumed hole is asked at once
        )


def parse_id(tid: str) -> tuple[int, int]:
    """``"123"`` -> (123, 123); ``"120-125"`` (a backfilled range) -> (120, 125)."""
    a, _, b = tid.partition("-")
    return int(a), int(b or a)


def plan(
    hole: Hole, aggs: list[dict]
) -> tuple[list[tuple[int, int, str, str, str]], tuple[int, int, str] | None]:
    """Rows ``(T ms, side, price, qty, trade_id)`` for the hole's missing trades, and the
    gap ``(start ms, end ms, detail)`` left unfilled (None: nothing missing remains)."""
    lo, hi = hole.lo, hole.hi
    held = [tuple(x) for x in hole.lo_tail] + [tuple(x) for x in hole.hi_tail]
    rows = []
    bad = []
    prev_a = None
    filled_to = lo  # every id <= filled_to is held or filled
    filled_T = hole.lo_T
    for g in sorted(aggs, key=lambda g: g["a"]):
        if prev_a is not None and g["a"] != prev_a + 1:
            break  # an aggregate the pages skipped: stop here, the rest is a gap
        prev_a = g["a"]
        f, l_ = int(g["f"]), int(g["l"])
        if l_ <= lo:
            continue
        if f >= hi:
            filled_to = hi - 1
            break
        m_lo, m_hi = max(f, lo + 1), min(l_, hi - 1)
        qty = Decimal(g["q"])
        if f < m_lo or l_ > m_hi:  # part of it is held: subtract the held fills
            inside = [(a, b, q) for a, b, q in held if a >= f and b <= l_]
            n_held = sum(b - a + 1 for a, b, _ in inside)
            if n_held != (l_ - f + 1) - (m_hi - m_lo + 1):
                bad.append(f"aggregate {g['a']}: held fills of ids {f}-{l_} unknown")
                filled_to, filled_T = m_hi, int(g["T"])
                continue
            qty -= sum((Decimal(str(q)) for _, _, q in inside), Decimal(0))
            if qty <= 0:
                bad.append(f"aggregate {g['a']}: held fills exceed its qty")
                filled_to, filled_T = m_hi, int(g["T"])
                continue
        tid = str(m_lo) if m_lo == m_hi else f"{m_lo}-{m_hi}"
        rows.append((int(g["T"]), -1 if g["m"] else 1, str(g["p"]), str(qty), tid))
        filled_to, filled_T = max(filled_to, m_hi), int(g["T"])
        if l_ >= hi - 1:
            break
    if filled_to >= hi - 1 and not bad:
        return rows, None
    why = "; ".join(bad) or (
        f"trade ids {filled_to + 1}-{hi - 1} not served" if filled_to < hi - 1 else "incomplete"
    )
    return rows, (filled_T, hole.hi_T, why)


async def fetch(http, rest_url: str, venue_symbol: str, hole: Hole) -> tuple[list, bool, str]:  # noqa: ANN001
    """The aggregates covering the hole: (aggs, complete, error text or "")."""
    out: list[dict] = []
    url = rest_url + AGG_TRADES_PATH
    params = {
        "symbol": venue_symbol,
        "startTime": str(hole.lo_T),
        "endTime": str(hole.lo_T + 3_599_999),  # the endpoint allows at most an hour
        "limit": str(PAGE),
    }
    for page in range(MAX_PAGES):
        if page >= BURST_PAGES:
            await asyncio.sleep(PAGE_SPACING_S)
        try:
            async with http.get(url, params=params) as r:
                body = await r.read()
                if r.status != 200:
                    return out, False, f"HTTP {r.status}: {body[:120]!r}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever failed, the rest is a gap
            return out, False, f"{type(exc).__name__}: {exc}"[:160]
        got = orjson.loads(body)
        if not isinstance(got, list):
            return out, False, f"unexpected answer {body[:120]!r}"
        if not got:
            return out, False, "no aggregated trades served past the last page"
        out.extend(got)
        if int(got[-1]["l"]) >= hole.hi - 1:
            return out, True, ""
        params = {"symbol": venue_symbol, "fromId": str(int(got[-1]["a"]) + 1), "limit": str(PAGE)}
    return out, False, f"more than {MAX_PAGES * PAGE:,} aggregated trades"
