"""Lake store figures for 20-level books, each beside a plain-tool baseline in the same run.

- write: store.write rows/s vs pyarrow.parquet.write_table (zstd, float64) of the same table;
- bounded query (one symbol, 1 h, LIMIT 1000) on a 10M-row lake vs DuckDB over plain
  daily Parquet files of the same rows;
- streaming scan rows/s into NumPy vs DuckDB streaming record batches;
- peak RSS of a child process streaming a dataset 10x larger than a 500 MB cap;
- bytes on disk per book row of the simulator's data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from algo_trade.schema import book_columns, label_array  # noqa: E402
from algo_trade.store.lake import LakeStore  # noqa: E402

T0 = 1_704_067_200_000_000_000
SEC = 1_000_000_000
DAY = 86_400 * SEC
DEPTH = 20


def books(n: int, start_ns: int, symbol: str, seed: int, step_ns: int = SEC) -> pa.Table:
    """Book rows shaped like real ones: 0.1 ticks near a random-walk mid, 0.001 lots."""
    rng = np.random.default_rng(seed)
    mid = 600_000 + np.cumsum(rng.integers(-2, 3, n))
    spread = 1 + rng.geometric(0.6, n)
    cols: dict[str, object] = {
        "ts": pa.array(start_ns + np.arange(n, dtype=np.int64) * step_ns),
        "exchange": label_array("sim", n),
        "symbol": label_array(symbol, n),
    }
    for side, sign in (("bid", -1), ("ask", 1)):
        gaps = np.cumsum(rng.geometric(0.5, (n, DEPTH)), axis=1) - 1
        ticks = (mid if side == "bid" else mid + spread)[:, None] + sign * gaps
        lots = rng.geometric(0.002, (n, DEPTH))
        for i in range(DEPTH):
            cols[f"{side}_px_{i}"] = pa.array(ticks[:, i] / 10.0)
        for i in range(DEPTH):
            cols[f"{side}_sz_{i}"] = pa.array(lots[:, i] / 1000.0)
    return pa.table({c: cols[c] for c in ["ts", "exchange", "symbol", *book_columns(DEPTH)]})


def bench_write(work: Path, n: int) -> list[dict]:
    table = books(
        n, T0, "BTC-USDT-PERP", 1, step_ns=SEC // 10
    )  # 100 ms books: n rows span n/864k days
    store = LakeStore(work / "w1")
    store.write("book", books(1000, T0 - DAY, "BTC-USDT-PERP", 0))  # compile kernels first
    t0 = time.perf_counter()
    store.write("book", table)
    ours = n / (time.perf_counter() - t0)
    plain = table.drop_columns(["exchange", "symbol"])
    t0 = time.perf_counter()
    pq.write_table(plain, work / "plain.parquet", compression="zstd")
    base = n / (time.perf_counter() - t0)
    return [
        {
            "name": "write 20-level books",
            "value": round(ours),
            "unit": "rows/s",
            "baseline": f"pyarrow write_table zstd: {base:,.0f} rows/s",
            "target": ">= 1,000,000",
            "ok": ours >= 1_000_000,
        }
    ]


def build_lake(work: Path, total: int) -> tuple[LakeStore, Path, int]:
    """`total` rows over two symbols at 1 s; also plain daily Parquet files for DuckDB."""
    store = LakeStore(work / "big", fsync=False)
    plain = work / "plain"
    plain.mkdir(exist_ok=True)
    per_symbol = total // 2
    days = -(-per_symbol // 86_400)
    for si, sym in enumerate(("BTC-USDT-PERP", "ETH-USDT-PERP")):
        for d in range(days):
            n = min(86_400, per_symbol - d * 86_400)
            t = books(n, T0 + d * DAY, sym, seed=si * 10_000 + d)
            store.write("book", t)
            pq.write_table(
                t.drop_columns(["exchange"]).set_column(
                    1, "symbol", t.column("symbol").cast(pa.string())
                ),
                plain / f"{sym}-{d:04d}.parquet",
                compression="zstd",
            )
    return store, plain, days


def bench_query(store: LakeStore, plain: Path, days: int, runs: int, hours: int) -> list[dict]:
    import duckdb

    rng = np.random.default_rng(7)
    starts = [T0 + int(rng.integers(0, hours - 1)) * 3_600 * SEC for _ in range(runs)]
    lat = []
    for s in starts:
        t0 = time.perf_counter()
        t = pa.Table.from_batches(
            list(store.scan("book", "sim", "BTC-USDT-PERP", s, s + 3_600 * SEC, limit=1000))
        )
        lat.append(time.perf_counter() - t0)
        assert t.num_rows == 1000
    con = duckdb.connect()
    q = (
        f"SELECT * FROM read_parquet('{plain}/*.parquet') WHERE symbol = 'BTC-USDT-PERP' "
        "AND ts >= ? AND ts < ? ORDER BY ts LIMIT 1000"
    )
    base = []
    for s in starts[: max(5, runs // 5)]:
        t0 = time.perf_counter()
        r = con.sql(q, params=[s, s + 3_600 * SEC]).to_arrow_table()
        base.append(time.perf_counter() - t0)
        assert r.num_rows == 1000
    med = float(np.median(lat)) * 1e3
    return [
        {
            "name": f"bounded query (1 symbol, 1 h, LIMIT 1000) on {store_rows(store):,} rows, median of {runs}",
            "value": round(med, 2),
            "unit": "ms",
            "baseline": f"DuckDB over plain daily Parquet: {np.median(base) * 1e3:.1f} ms",
            "target": "<= 10",
            "ok": med <= 10,
        }
    ]


def store_rows(store: LakeStore) -> int:
    return sum(s.rows for s in store.stats())


def bench_scan(store: LakeStore, plain: Path, days: int) -> list[dict]:
    import duckdb

    end = T0 + days * DAY

    def scan() -> int:
        n = 0
        for b in store.scan("book", "sim", "BTC-USDT-PERP", T0, end):
            arrays = [b.column(i).to_numpy() for i in range(3, b.num_columns)]  # zero-copy float64
            n += len(arrays[0])
        return n

    scan()  # warm the page cache and footers
    t0 = time.perf_counter()
    n = scan()
    ours = n / (time.perf_counter() - t0)
    con = duckdb.connect()
    q = f"SELECT * FROM read_parquet('{plain}/BTC-USDT-PERP-*.parquet') WHERE ts >= ? AND ts < ?"
    t0 = time.perf_counter()
    m = 0
    reader = con.sql(q, params=[T0, end]).to_arrow_reader(65_536)
    for b in reader:
        arrays = [b.column(i).to_numpy() for i in range(2, b.num_columns)]
        m += len(arrays[0])
    base = m / (time.perf_counter() - t0)
    return [
        {
            "name": f"streaming scan into NumPy ({n:,} rows, 80 level columns)",
            "value": round(ours),
            "unit": "rows/s",
            "baseline": f"DuckDB record batches over plain Parquet: {base:,.0f} rows/s",
            "target": ">= 2,000,000",
            "ok": ours >= 2_000_000,
        }
    ]


_RSS_CHILD = """
import sys, json, numpy as np
sys.path.insert(0, {src!r})
from algo_trade.store.lake import LakeStore
from algo_trade.profiling import peak_rss_mb
store = LakeStore({home!r})
n = 0
total = np.zeros(80)
for sym in ("BTC-USDT-PERP", "ETH-USDT-PERP"):
    for b in store.scan("book", "sim", sym, {start}, {end}):
        for i in range(3, b.num_columns):
            total[i - 3] += np.nansum(b.column(i).to_numpy())
        n += b.num_rows
print(json.dumps({{"rows": n, "peak_rss_mb": peak_rss_mb()}}))
"""


def bench_rss(store: LakeStore, days: int) -> list[dict]:
    code = _RSS_CHILD.format(
        src=str(ROOT / "src"), home=str(store.home), start=T0, end=T0 + days * DAY
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    decoded_mb = got["rows"] * (8 * (1 + 4 * DEPTH)) / 2**20
    return [
        {
            "name": f"peak RSS streaming {got['rows']:,} rows ({decoded_mb:,.0f} MB decoded)",
            "value": round(got["peak_rss_mb"], 1),
            "unit": "MB",
            "baseline": f"data streamed = {decoded_mb / 500:.1f}x a 500 MB cap",
            "target": "< 500 with >= 10x the cap streamed",
            "ok": got["peak_rss_mb"] < 500 and decoded_mb >= 5_000,
        }
    ]


def bench_bytes(work: Path) -> list[dict]:
    from algo_trade.simulator import generate

    store = LakeStore(work / "sim")
    generate(store, ["BTC-USDT-PERP", "ETH-USDT-PERP"], 1.0, SEC, 20, 42)
    st = [s for s in store.stats() if s.kind == "book"]
    per_row = sum(s.bytes for s in st) / sum(s.rows for s in st)
    return [
        {
            "name": "bytes on disk per 20-level book row (simulator, 1 day, 2 symbols)",
            "value": round(per_row, 1),
            "unit": "bytes/row",
            "baseline": "measured elsewhere: PostgreSQL 908, DuckDB 316, TimescaleDB compressed 163",
            "target": "<= 150",
            "ok": per_row <= 150,
        }
    ]


def run(quick: bool) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    try:
        rows = bench_write(work, 300_000 if quick else 2_000_000)
        total = 1_000_000 if quick else 10_000_000
        store, plain, days = build_lake(work, total)
        rows += bench_query(store, plain, days, 30 if quick else 200, total // 2 // 3_600)
        rows += bench_scan(store, plain, days)
        rows += bench_rss(store, days)
        rows += bench_bytes(work)
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    for r in run("--quick" in sys.argv):
        print(r)
