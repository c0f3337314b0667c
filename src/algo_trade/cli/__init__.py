"""The `algo-trade` command line (Typer)."""
