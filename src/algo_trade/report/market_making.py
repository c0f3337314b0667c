"""Events-mode report: quotes against the mid, fills (maker/taker), inventory, the PnL split
(spread capture, inventory PnL, fees/rebates, funding) and markouts of fills.

Definitions (docs/engine.md, "Events-mode report"), for a fill of signed qty q at price p
with the exchange mid m at that moment:
    spread capture = sum(q * (m - p))              (bought below / sold above the mid: > 0)
    inventory PnL  = total PnL - spread capture + fees + funding paid
    total PnL      = final equity - init_cash
    markout(h)     = sign(q) * (mid(t + h) - p) / p, in bps, averaged over fills
mid(t + h) is the last equity record at or before t + h (records every `record_every_ms`:
use a finer grid for short horizons); fills whose horizon passes the end are left out.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HORIZONS_S = (1, 10, 60)


def analyze(res: Any) -> dict[str, Any]:
    """The report's numbers as a plain dict."""
    lg = res.ledger_array
    rc = res.records_array
    init = res.settings.init_cash
    fills = lg[(lg["kind"] == 0) | (lg["kind"] == 1)]
    total = res.stats["final_equity"] - init
    capture = float(np.sum(fills["qty"] * (fills["mid"] - fills["px"]))) if len(fills) else 0.0
    fees = float(res.stats["fees"])
    funding_paid = float(-res.stats["funding_pnl"])
    out: dict[str, Any] = {
        "total_pnl": float(total),
        "spread_capture": capture,
        "inventory_pnl": float(total - capture + fees + funding_paid),
        "fees": fees,
        "funding_paid": funding_paid,
        "maker_fills": int(np.sum(fills["kind"] == 0)),
        "taker_fills": int(np.sum(fills["kind"] == 1)),
        "maker_volume": float(np.sum(np.abs(fills["qty"] * fills["px"])[fills["kind"] == 0])),
        "taker_volume": float(np.sum(np.abs(fills["qty"] * fills["px"])[fills["kind"] == 1])),
    }
    if len(rc):
        pos = rc["pos"]
        out["max_inventory"] = float(np.max(np.abs(pos)))
        out["mean_abs_inventory"] = float(np.mean(np.abs(pos)))
        mid = rc["mid"]
        ok = mid > 0
        for side, col in (("bid", "bid_quote"), ("ask", "ask_quote")):
            q = rc[col]
            has = ok & (q == q)
            out[f"{side}_quoted_fraction"] = float(np.mean(has)) if len(q) else 0.0
            dist = np.abs(q[has] - mid[has]) / mid[has] * 1e4
            out[f"{side}_distance_bps"] = float(np.mean(dist)) if dist.size else float("nan")
    for h in HORIZONS_S:
        out[f"markout_{h}s_bps"] = _markout(fills, rc, h)
    return out


def _markout(fills: np.ndarray, rc: np.ndarray, h: int) -> float:
    if len(fills) == 0 or len(rc) == 0:
        return float("nan")
    t = fills["ts"] + h * 1_000_000_000
    keep = t <= rc["ts"][-1]
    if not keep.any():
        return float("nan")
    k = np.searchsorted(rc["ts"], t[keep], side="right") - 1
    m = rc["mid"][k]
    f = fills[keep]
    v = np.sign(f["qty"]) * (m - f["px"]) / f["px"] * 1e4
    v = v[np.isfinite(v)]
    return float(np.mean(v)) if v.size else float("nan")


def figure(res: Any) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from algo_trade.report.backtest import thin

    eq = res.equity.copy()
    eq.index = eq.index.floor("us").as_unit("us")  # plotly drops (and warns about) ns
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=("mid, own best quotes and fills", "equity", "inventory"))  # fmt: skip
    for col, name in (("mid", "mid"), ("bid_quote", "bid quote"), ("ask_quote", "ask quote")):
        x, y = thin(eq.index, eq[col].to_numpy())
        fig.add_trace(go.Scattergl(x=x, y=y, name=name, mode="lines"), row=1, col=1)
    f = res.fills
    f = f[f["kind"].isin(["maker", "taker"])].iloc[:5000]
    f.index = f.index.floor("us").as_unit("us")
    for side, sel, sym in (
        ("buys", f["qty"] > 0, "triangle-up"),
        ("sells", f["qty"] < 0, "triangle-down"),
    ):
        fig.add_trace(go.Scattergl(x=f.index[sel], y=f["px"][sel], mode="markers", name=side,
                                   marker={"symbol": sym, "size": 6}), row=1, col=1)  # fmt: skip
    x, y = thin(eq.index, eq["equity"].to_numpy())
    fig.add_trace(go.Scattergl(x=x, y=y, name="equity"), row=2, col=1)
    x, y = thin(eq.index, eq["pos"].to_numpy())
    fig.add_trace(go.Scattergl(x=x, y=y, name="inventory"), row=3, col=1)
    fig.update_layout(height=900, template="plotly_white")
    return fig


def write_report(res: Any, path: str | os.PathLike[str]) -> Path:
    """A self-contained HTML page (plotly.js inlined), written atomically."""
    from algo_trade.fileio import write_text_atomic

    nums = analyze(res)
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{v:,.6g}</td></tr>" if isinstance(v, float)
        else f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>"
        for k, v in {**res.stats, **nums}.items()
    )  # fmt: skip
    plot = figure(res).to_html(full_html=False, include_plotlyjs=True)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>algo-trade events: {html.escape(res.strategy)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em}th{text-align:left;color:#555;"
        "font-weight:500;padding-right:1em}td{text-align:right}table{float:left;margin-right:2em}</style>"
        f"</head><body><h1>{html.escape(res.strategy)} {html.escape(str(res.params))}</h1>"
        f"<table>{rows}</table><div>{plot}</div></body></html>"
    )
    return write_text_atomic(path, page)


def summary_frame(res: Any) -> pd.DataFrame:
    return pd.DataFrame({"value": analyze(res)})
