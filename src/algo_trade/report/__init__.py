"""Reports: plotly figures and self-contained HTML pages for backtests (sweeps have theirs)."""
