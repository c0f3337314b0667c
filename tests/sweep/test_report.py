"""Reports: heatmap for two varied parameters, parallel coordinates for more, stability
around the best point, walk-forward equity; a self-contained page."""

from __future__ import annotations

import numpy as np

import algo_trade
from algo_trade.report.sweep import stability, sweep_figures
from algo_trade.sweep.api import sweep


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
    # the best row's equity, the heatmap, stability
    assert [f.data[0].type for f in sweep_figures(res)] == ["scatter", "heatmap", "scatter"]
    assert html.count("Plotly.newPlot") == 3 and "stability of sharpe" in html
    assert "equity of the best row" in html
    np.testing.assert_array_equal(
        res.best_equity.to_numpy(),
        algo_trade.backtest(short_bars, "sma_cross", params=res.best_params)
        .equity["equity"]
        .to_numpy(),
    )
    # the overfitting section is a table, one line of explanation per figure
    assert "<h2>Overfitting</h2><table" in html and "deflated Sharpe ratio" in html
    assert "probability that the best row's true Sharpe beats luck" in html
    assert "<script src=" not in html and len(html) > 1_000_000  # plotly.js inline: works offline


def test_three_parameters_parallel_coordinates(short_bars):
    res = sweep(
        short_bars, "sma_cross", {"fast": "5:20:5", "slow": "30:90:30", "short": [False, True]}
    )
    # a heatmap for every pair of varied parameters, then parallel coordinates
    types = [f.data[0].type for f in sweep_figures(res)]
    assert types == ["scatter", "heatmap", "heatmap", "heatmap", "parcoords", "scatter"]
    assert res.heatmap("short", "slow").data[0].type == "heatmap"  # any two, on request


def test_walk_forward_equity_in_the_report(short_bars):
    res = sweep(
        short_bars,
        "sma_cross",
        {"fast": [5, 10], "slow": [30, 60]},
        walk_forward="train=1d,test=12h",
    )
    assert sweep_figures(res)[-1].layout.title.text == "walk-forward: stitched out-of-sample equity"
    assert "Walk-forward windows" in res.to_html()
