"""Reports: heatmap for two varied parameters, parallel coordinates for more, stability
around the best point, walk-forward equity; a self-contained page."""

from __future__ import annotations

import numpy as np

from algo_trade.sweep.api import sweep
from algo_trade.sweep.report import stability, sweep_figures


def test_two_parameters_heatmap_and_stability(short_bars, tmp_path):
    res = sweep(short_bars, "sma_cross", {"fast": "5:20:5", "slow": "30:90:30"})
    fig = res.heatmap()
    assert fig.data[0].type == "heatmap"
    z = np.asarray(fig.data[0].z, dtype=float)
    piv = res.results.pivot_table(index="slow", columns="fast", values="sharpe")
    np.testing.assert_allclose(z, piv.to_numpy())
    st = stability(res).set_index("param")
    best = res.best
    along_fast = res.results[res.results["slow"] == best["slow"]].sort_values("fast")
    assert st.loc["fast", "values"] == along_fast["fast"].tolist()
    assert st.loc["fast", "sharpe"] == along_fast["sharpe"].tolist()
    html = res.to_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text() == html
    assert [f.data[0].type for f in sweep_figures(res)] == ["heatmap", "scatter"]
    assert html.count("Plotly.newPlot") == 2 and "stability of sharpe" in html
    assert "<script src=" not in html and len(html) > 1_000_000  # plotly.js inline: works offline


def test_three_parameters_parallel_coordinates(short_bars):
    res = sweep(
        short_bars, "sma_cross", {"fast": "5:20:5", "slow": "30:90:30", "short": [False, True]}
    )
    assert [f.data[0].type for f in sweep_figures(res)] == ["parcoords", "scatter"]
    assert res.heatmap("fast", "slow").data[0].type == "heatmap"  # still available on request


def test_walk_forward_equity_in_the_report(short_bars):
    res = sweep(
        short_bars,
        "sma_cross",
        {"fast": [5, 10], "slow": [30, 60]},
        walk_forward="train=1d,test=12h",
    )
    assert sweep_figures(res)[-1].layout.title.text == "walk-forward: stitched out-of-sample equity"
    assert "Walk-forward windows" in res.to_html()
