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


def sweep_figures(res) -> list:
    """The report's plotly figures: heatmap (two varied parameters) or parallel coordinates
    (more), stability around the best point, walk-forward equity."""
    figs = []
    axes = varied(res)
    if len(axes) == 2:
        figs.append(heatmap_figure(res))
    elif len(axes) > 2:
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
    over = {"deflated Sharpe": res.dsr, "PBO (CSCV)": res.pbo}
    wf = ""
    if res.walk_forward is not None:
        wf = (
            "<h2>Walk-forward windows</h2>"
            + _table(res.walk_forward.windows)
            + "<pre>"
            + _html.escape(json.dumps(res.walk_forward.stats, indent=1))
            + "</pre>"
        )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>sweep {res.sweep_id or ""}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:1200px}} table.t{{border-collapse:collapse;font-size:13px}}
table.t td,table.t th{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}}</style></head><body>
<h1>Sweep: {_html.escape(res.strategy)} ranked by {_html.escape(res.metric)}</h1>
<p>{len(res.results):,} combinations; settings {_html.escape(json.dumps(res.settings))}; {res.seconds:.2f} s.</p>
<h2>Overfitting</h2><pre>{_html.escape(json.dumps(over, indent=1, default=str))}</pre>
<h2>Top 20</h2>{_table(top)}
{"".join(parts)}
{wf}
</body></html>"""
