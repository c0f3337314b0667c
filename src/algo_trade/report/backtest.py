"""A backtest's report: one plotly figure (price and fills, equity, drawdown, position,
funding) and a self-contained HTML page with the stats, which works offline.

Long runs are thinned for drawing: each panel keeps at most ``MAX_POINTS`` points, taking
the first, min and max of each bucket so spikes and drawdowns stay visible. Fills are
drawn as they are, up to ``MAX_FILLS`` (then an even sample; the page says so).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MAX_POINTS = 4000
MAX_FILLS = 5000


def thin(
    index: pd.Index, values: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[pd.Index, np.ndarray]:
    """At most about `max_points` points of a line, keeping each bucket's first, min and max."""
    n = len(values)
    if n <= max_points:
        return index, values
    per = int(np.ceil(n / (max_points // 3)))
    starts = np.arange(0, n, per)
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=np.inf)
    lo = np.minimum.reduceat(v, starts)
    hi = np.maximum.reduceat(np.where(np.isinf(v), -np.inf, v), starts)
    # positions of each bucket's min and max (first occurrence), found per bucket by broadcast
    bucket = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))
    pos = np.arange(n)
    imin = np.full(len(starts), n)
    imax = np.full(len(starts), n)
    np.minimum.at(imin, bucket[v == lo[bucket]], pos[v == lo[bucket]])
    np.minimum.at(imax, bucket[v == hi[bucket]], pos[v == hi[bucket]])
    keep = np.unique(np.concatenate([starts, imin[imin < n], imax[imax < n], [n - 1]]))
    return index[keep], np.asarray(values)[keep]


def figure(result: Any) -> Any:
    """The backtest as a plotly Figure with five stacked panels sharing the time axis."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    eq = result.equity
    pos = result.positions
    fills = result.fills
    fig = make_subplots(
        rows=5,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.025,
        row_heights=[0.34, 0.22, 0.14, 0.15, 0.15],
        subplot_titles=(
            "price and fills",
            "equity",
            "drawdown",
            "position (qty)",
            "funding (cumulative, + = paid)",
        ),
    )
    x, y = thin(pos.index, pos["price"].to_numpy())
    fig.add_trace(go.Scattergl(x=x, y=y, name="price", line={"width": 1, "color": "#444"}), 1, 1)
    sampled = len(fills) > MAX_FILLS
    if sampled:
        fills = fills.iloc[np.linspace(0, len(fills) - 1, MAX_FILLS).astype(np.int64)]
    for label, mask, symbol, color in (
        ("buy", (fills["side"] > 0) & (fills["kind"] != "liquidation"), "triangle-up", "#1a9850"),
        (
            "sell",
            (fills["side"] < 0) & (fills["kind"] != "liquidation"),
            "triangle-down",
            "#d73027",
        ),
        ("liquidation", fills["kind"] == "liquidation", "x", "#7b3294"),
    ):
        f = fills[mask]
        if len(f):
            fig.add_trace(
                go.Scattergl(
                    x=f.index, y=f["price"], mode="markers", name=label,
                    marker={"symbol": symbol, "size": 8, "color": color},
                    customdata=np.stack([f["qty"], f["fee"]], axis=1),
                    hovertemplate="%{x}<br>price %{y}<br>qty %{customdata[0]:.6g}<br>fee %{customdata[1]:.4g}",
                ),
                1, 1,
            )  # fmt: skip
    for row, series, name, color in (
        (2, eq["equity"], "equity", "#2166ac"),
        (3, -eq["drawdown"], "drawdown", "#b2182b"),
        (4, pos["qty"], "qty", "#5e3c99"),
        (5, pos["funding"], "funding", "#e66101"),
    ):
        x, y = thin(series.index, series.to_numpy())
        fill = "tozeroy" if row in (3, 4) else None
        fig.add_trace(
            go.Scattergl(x=x, y=y, name=name, fill=fill, line={"width": 1, "color": color}), row, 1
        )
    title = f"{result.strategy} {result.params} — {result.mode} mode"
    if result.symbol:
        title += f" — {result.exchange}/{result.symbol}"
    if sampled:
        title += f" (fills sampled: {MAX_FILLS:,} of {len(result.fills):,} drawn)"
    fig.update_layout(
        title=title, height=1000, hovermode="x unified", template="plotly_white", showlegend=True
    )
    fig.update_yaxes(tickformat=".1%", row=3, col=1)
    return fig


def _stats_table(stats: pd.Series) -> str:
    rows = []
    for k, v in stats.items():
        if isinstance(v, (float, np.floating)):
            s = f"{float(v):,.6g}"
        else:
            s = str(v)
        rows.append(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(s)}</td></tr>")
    return "<table class='stats'>" + "".join(rows) + "</table>"


def to_html_string(result: Any) -> str:
    fig = figure(result)
    plot = fig.to_html(full_html=False, include_plotlyjs=True)  # plotly.js inlined: works offline
    settings = getattr(result, "settings", None)
    settings_s = html.escape(str(settings)) if settings is not None else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>algo-trade backtest: {html.escape(str(result.strategy))}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em}"
        "table.stats{border-collapse:collapse;font-size:0.9em;float:left;margin-right:2em}"
        "table.stats th{text-align:left;padding:2px 10px 2px 0;font-weight:500;color:#555}"
        "table.stats td{text-align:right;font-variant-numeric:tabular-nums}"
        ".plot{overflow:hidden}</style></head><body>"
        f"<h1>{html.escape(str(result.strategy))} {html.escape(str(result.params))}</h1>"
        f"<p><small>{settings_s}</small></p>"
        f"{_stats_table(result.stats)}<div class='plot'>{plot}</div></body></html>"
    )


def write_html(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write the report atomically (a reader never sees half a page) and return its path."""
    from algo_trade.fileio import write_text_atomic

    return write_text_atomic(path, to_html_string(result))
