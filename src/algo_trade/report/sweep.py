"""HTML report of a sweep: ranked table, heatmap or parallel coordinates, stability, walk-forward."""

from __future__ import annotations

import html as _html
import json

import numpy as np
import pandas as pd


def varied(res) -> list[str]:
    """The parameters that take more than one value in the sweep (the axes worth plotting)."""
    return [p for p in res.params if res.results[p].nunique() > 1]


def heatmap_figure(res, x: str | None = None, y: str | None = None, metric: str | None = None):
    """Heatmap of `metric` over two parameters; other parameters fixed at the best's values."""
    import plotly.graph_objects as go

    from algo_trade.errors import ConfigError

    metric = metric or res.metric
    params = res.params
    axes = varied(res) or params
    x = x or axes[0]
    y = y or next((p for p in axes if p != x), None)
    if y is None or x not in params or y not in params:
        raise ConfigError(f"heatmap needs two of the parameters {', '.join(params)}")
    df = res.results
    best = res.best
    for p in params:
        if p not in (x, y):
            df = df[df[p] == best[p]]
    pivot = df.pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
    fig = go.Figure(
        go.Heatmap(
            z=pivot.to_numpy(),
            x=[str(c) for c in pivot.columns],
            y=[str(i) for i in pivot.index],
            colorscale="RdYlGn",
            reversescale=res.ascending,
            colorbar={"title": metric},
        )  # fmt: skip
    )
    fig.add_trace(
        go.Scatter(
            x=[str(best[x])],
            y=[str(best[y])],
            mode="markers",
            marker={"symbol": "x", "size": 14, "color": "black"},
            name="best",
        )
    )
    fig.update_layout(title=f"{metric} over {x} × {y}", xaxis_title=x, yaxis_title=y, height=520)
    return fig


def parallel_figure(res, metric: str | None = None):
    import plotly.graph_objects as go

    metric = metric or res.metric
    df = res.results
    dims = [{"label": p, "values": df[p].astype(float)} for p in varied(res)] + [
        {"label": metric, "values": df[metric]}
    ]
    return go.Figure(
        go.Parcoords(
            line={"color": df[metric], "colorscale": "RdYlGn", "showscale": True}, dimensions=dims
        )
    )


def stability(res, metric: str | None = None) -> pd.DataFrame:
    """For each parameter: the metric along that axis with the others at the best point."""
    metric = metric or res.metric
    best = res.best
    rows = []
    for p in varied(res):
        df = res.results
        for q in res.params:
            if q != p:
                df = df[df[q] == best[q]]
        df = df.sort_values(p)
        vals = df[p].to_numpy()
        i = int(np.searchsorted(vals, best[p]))
        nb = df[metric].to_numpy()[max(i - 1, 0) : i + 2]
        rows.append({"param": p, "best": best[p], "values": vals.tolist(), metric: df[metric].to_numpy().tolist(),
                     "neighbours_mean": float(np.mean(nb)) if len(nb) else float("nan")})  # fmt: skip
    return pd.DataFrame(rows)


def _stability_figure(res, stab: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=len(stab),
        subplot_titles=[f"{r['param']} (others at best)" for _, r in stab.iterrows()],
    )
    for i, (_, r) in enumerate(stab.iterrows(), start=1):
        fig.add_trace(
            go.Scatter(x=r["values"], y=r[res.metric], mode="lines+markers", name=r["param"]),
            row=1,
            col=i,
        )
        fig.add_vline(x=r["best"], line_dash="dot", row=1, col=i)
    fig.update_layout(
        title=f"stability of {res.metric} around the best point", height=380, showlegend=False
    )
    return fig


def _wf_figure(wf):
    import plotly.graph_objects as go

    step = max(1, len(wf.equity) // 5000)  # thin for the page; the full curve stays in the result
    x = pd.to_datetime(wf.ts[::step])
    fig = go.Figure(go.Scatter(x=x, y=wf.equity[::step], mode="lines", name="out-of-sample equity"))
    for _, w in wf.windows.iterrows():
        fig.add_vline(
            x=pd.Timestamp(w["test_start"]), line_width=1, line_dash="dot", line_color="gray"
        )
    fig.update_layout(title="walk-forward: stitched out-of-sample equity", height=420)
    return fig


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.6g}", border=0, classes="t")


def overfitting_rows(res) -> list[dict]:
    """The overfitting section as rows: figure, value, what it says (one line each)."""
    rows = []
    d, p = res.dsr or {}, res.pbo or {}
    if d:
        rows += [
            {"figure": "trials", "value": d.get("trials"),
             "meaning": "backtests tried (every grid, random or optuna trial): the DSR deflates by all of them"},
            {"figure": "Sharpe of the best (per bar)", "value": d.get("sharpe_per_bar"),
             "meaning": "the chosen row's Sharpe ratio, not annualized (the paper's unit)"},
            {"figure": "expected max Sharpe by luck", "value": d.get("expected_max_sharpe_per_bar"),
             "meaning": "the best Sharpe that this many zero-skill trials would reach on average"},
            {"figure": "deflated Sharpe ratio", "value": d.get("dsr"),
             "meaning": "probability that the best row's true Sharpe beats luck; below 0.95 is not significant"},
            {"figure": "skew / kurtosis of its returns", "value": f"{_num(d.get('skew'))} / {_num(d.get('kurtosis'))}",
             "meaning": "fat tails (kurtosis > 3) and negative skew lower the DSR"},
        ]  # fmt: skip
    if p:
        rows += [
            {"figure": "probability of backtest overfitting", "value": p.get("pbo"),
             "meaning": f"share of {p.get('splits')} CSCV splits where the in-sample best is below the median out of sample; above 0.5 is worse than a coin"},
            {"figure": "OOS vs IS Sharpe slope", "value": p.get("oos_vs_is_slope"),
             "meaning": "how out-of-sample Sharpe follows in-sample Sharpe across splits; negative: the better it looks, the worse it does"},
        ]  # fmt: skip
    return rows


def _num(v) -> str:
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return str(v)


def heatmap_pairs(res, limit: int = 6) -> list[tuple[str, str]]:
    """Pairs of varied parameters to draw (every pair, up to `limit`)."""
    axes = varied(res)
    return [(axes[i], axes[j]) for i in range(len(axes)) for j in range(i + 1, len(axes))][:limit]


def _equity_figure(res):
    import plotly.graph_objects as go

    eq = res.best_equity
    step = max(1, len(eq) // 5000)  # thinned for the page; the curve stays in the result
    params = ", ".join(f"{k}={v}" for k, v in res.best_params.items())
    fig = go.Figure(
        go.Scatter(x=eq.index[::step], y=eq.to_numpy()[::step], mode="lines", name="equity")
    )
    fig.update_layout(title=f"equity of the best row ({params})", height=380)
    return fig


def sweep_figures(res) -> list:
    """The report's plotly figures: the best row's equity, a heatmap for every pair of
    varied parameters (others at the best's values), parallel coordinates when more than
    two vary, stability around the best point, walk-forward equity."""
    figs = []
    if res.best_equity is not None and len(res.best_equity):
        figs.append(_equity_figure(res))
    for x, y in heatmap_pairs(res):
        figs.append(heatmap_figure(res, x, y))
    if len(varied(res)) > 2:
        figs.append(parallel_figure(res))
    stab = stability(res)
    if len(stab):
        figs.append(_stability_figure(res, stab))
    if res.walk_forward is not None:
        figs.append(_wf_figure(res.walk_forward))
    return figs


def sweep_html(res) -> str:
    figs = sweep_figures(res)
    parts = []
    for i, f in enumerate(figs):
        parts.append(f.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False))
    top = res.ranked(20)
    over = overfitting_rows(res)
    over_html = (
        _table(pd.DataFrame(over)) if over else "<p>not computed (one row, or too few events)</p>"
    )
    wf = ""
    if res.walk_forward is not None:
        o = res.walk_forward.stats
        wf = (
            "<h2>Walk-forward windows</h2>"
            + _table(res.walk_forward.windows)
            + "<h3>Stitched out of sample</h3>"
            + _table(pd.DataFrame([{k: o[k] for k in o if k in _WF_KEYS}]))
        )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>sweep {res.sweep_id or ""}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:1200px}} table.t{{border-collapse:collapse;font-size:13px}}
table.t td,table.t th{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}}
table.t td:last-child{{text-align:left}}</style></head><body>
<h1>Sweep: {_html.escape(res.strategy)} ({_html.escape(res.mode)}, {_html.escape(res.search)} search) ranked by {_html.escape(res.metric)}</h1>
<p>{len(res.results):,} trials; settings {_html.escape(json.dumps(res.settings))}; {res.seconds:.2f} s.</p>
<h2>Overfitting</h2>{over_html}
<h2>Top 20</h2>{_table(top)}
{"".join(parts)}
{wf}
</body></html>"""


_WF_KEYS = (
    "windows",
    "bars",
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "orders",
    "trades",
)
