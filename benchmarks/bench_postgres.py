"""PostgreSQL store figures for 20-level books, each beside plain psycopg ways in the same run.

A throwaway PostgreSQL (fsync on, synchronous_commit on) is started for the run.

- write rows/s, end to end from Arrow: one INSERT per row (autocommit), executemany,
  psycopg binary COPY with write_row (levels as float8[]), and PostgresStore.write
  (fresh range: direct COPY; same batch again: staged ON CONFLICT path);
- bounded query (one series, random 1 h window, LIMIT 1000) on >= 10M rows, median ms with
  client decoding, vs a psycopg binary cursor fetchall of the same rows;
- streamed 1-day scan (172,800 rows of one series) rows/s into NumPy, pages cached, vs a
  psycopg server-side binary cursor; and the peak RSS of a child streaming 5 days.
- TimescaleDB (when it is installed for these binaries; a second server preloading it):
  simulator books (1 day, 2 symbols, 20 levels: the data of issue 15) written into the
  hypertable, rows/s, and bytes per row after compression, beside the previous layout
  (schema 2, packed int32 levels) and plain PostgreSQL measured in the same run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from algo_trade.schema import book_columns  # noqa: E402
from algo_trade.store import pgcopy  # noqa: E402
from algo_trade.store.postgres import PostgresStore  # noqa: E402
from algo_trade.store.postgres.levels import decode_levels  # noqa: E402
from benchmarks.bench_lake import DAY, DEPTH, SEC, T0, books  # noqa: E402

ROWS_PER_DAY = 172_800  # one book every 0.5 s
SERVER_SETTINGS = {
    "shared_buffers": "'1GB'",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'30min'",
    # The WAL writer flushes every 10 ms (default 200 ms), so a COPY's backend seldom has
    # to write and fsync WAL itself when its bulk-write ring recycles a page (docs/stores.md).
    "wal_writer_delay": "'10ms'",
}


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds) if seconds > 0 else float("inf")


def _day(symbol: str, seed: int, day: int, base: dict[str, pa.Table]) -> pa.Table:
    """One day of books for `symbol`; the level values repeat across days (cheap to make)."""
    if symbol not in base:
        base[symbol] = books(ROWS_PER_DAY, T0, symbol, seed, step_ns=SEC // 2)
    t = base[symbol]
    ts = T0 + day * DAY + np.arange(ROWS_PER_DAY, dtype=np.int64) * (SEC // 2)
    return t.set_column(0, "ts", pa.array(ts))


def _baseline_table(conn) -> None:
    conn.execute(
        "CREATE TABLE book_arr (ts bigint NOT NULL, exchange text NOT NULL, symbol text NOT NULL,"
        " bid_px float8[], bid_sz float8[], ask_px float8[], ask_sz float8[])"
    )
    conn.execute("CREATE UNIQUE INDEX ON book_arr (symbol, exchange, ts DESC)")


def _rows(t: pa.Table) -> list[tuple]:
    """Python rows with the four level arrays, built from the Arrow columns."""
    names = book_columns(DEPTH)
    mat = np.column_stack([t.column(c).to_numpy() for c in names])
    ts = t.column("ts").to_numpy().tolist()
    ex = t.column("exchange").to_pylist()
    sym = t.column("symbol").to_pylist()
    d = DEPTH
    return [
        (ts[i], ex[i], sym[i], *(mat[i, k * d : (k + 1) * d].tolist() for k in range(4)))
        for i in range(t.num_rows)
    ]


def _levels(rows: list[tuple]) -> np.ndarray:
    """The baselines' decoding of fetched (ts, levels) rows: float64[4 * DEPTH, n]."""
    blob = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8)
    lengths = np.array([len(r[1]) for r in rows], dtype=np.int64)
    out, bad = decode_levels(blob, lengths, DEPTH)
    assert bad < 0
    return out


def bench_write(url: str, quick: bool) -> list[dict]:
    import psycopg

    out = []
    table = books(
        100_000 if quick else 400_000, T0 + 900 * DAY, "ETH-USDT-PERP", 7, step_ns=SEC // 2
    )
    with psycopg.connect(url, autocommit=True) as conn:
        _baseline_table(conn)
        sql = "INSERT INTO book_arr VALUES (%s, %s, %s, %s, %s, %s, %s)"
        n = 1_000 if quick else 3_000
        t0 = time.perf_counter()
        rows = _rows(table.slice(0, n))
        with conn.cursor() as cur:
            for r in rows:
                cur.execute(sql, r)
        per_row = _rate(n, time.perf_counter() - t0)
        n2 = 5_000 if quick else 20_000
        t0 = time.perf_counter()
        rows = _rows(table.slice(n, n2))
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)
        many = _rate(n2, time.perf_counter() - t0)
        n3 = 20_000 if quick else 100_000
        t0 = time.perf_counter()
        rows = _rows(table.slice(n + n2, n3))
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY book_arr FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(
                    ["int8", "text", "text", "float8[]", "float8[]", "float8[]", "float8[]"]
                )
                for r in rows:
                    cp.write_row(r)
        copy_rows = _rate(n3, time.perf_counter() - t0)
    store = PostgresStore(url)
    try:
        t0 = time.perf_counter()
        res = store.write("book", table)
        direct = _rate(table.num_rows, time.perf_counter() - t0)
        assert res.written == table.num_rows
        half = table.num_rows // 2
        again = pa.concat_tables(
            [table.slice(half), books(half, T0 + 950 * DAY, "ETH-USDT-PERP", 8, SEC // 2)]
        )
        t0 = time.perf_counter()
        res = store.write("book", again)
        staged = _rate(again.num_rows, time.perf_counter() - t0)
        assert res.duplicates == table.num_rows - half
    finally:
        store.close()
    for name, value, note in [
        ("write: one INSERT per row (autocommit)", per_row, f"{n:,} rows"),
        ("write: executemany", many, f"{n2:,} rows, one transaction"),
        ("write: psycopg binary COPY write_row (float8[])", copy_rows, f"{n3:,} rows"),
    ]:
        out.append({"name": name, "value": value, "unit": "rows/s", "note": note + "; baseline"})
    out.append(
        {
            "name": "write: PostgresStore.write (binary COPY from Arrow)",
            "value": direct,
            "unit": "rows/s",
            "target": ">= 150,000",
            "baseline": copy_rows,
            "ok": direct >= 150_000,
            "note": f"{table.num_rows:,} rows, new range: direct COPY",
        }
    )
    out.append(
        {
            "name": "write: PostgresStore.write, half already stored",
            "value": staged,
            "unit": "rows/s",
            "baseline": copy_rows,
            "note": "staging table + INSERT ON CONFLICT DO NOTHING",
        }
    )
    return out


def bench_async(url: str, quick: bool) -> list[dict]:
    """How long the collector's event loop stalls while a batch is written."""
    import asyncio

    table = books(
        50_000 if quick else 172_800, T0 + 1200 * DAY, "SOL-USDT-PERP", 9, step_ns=SEC // 2
    )

    async def stall(write) -> tuple[float, float]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        await write()
        spent = time.perf_counter() - t0
        done.set()
        await task
        return max(gaps) * 1000, spent

    store = PostgresStore(url)
    try:

        async def blocking() -> None:
            store.write("book", table)

        shifted = table.set_column(0, "ts", pa.array(table.column("ts").to_numpy() + 100 * DAY))
        worst_async, spent = asyncio.run(stall(lambda: store.write_async("book", shifted)))
        worst_blocking, _ = asyncio.run(stall(blocking))
    finally:
        store.close()
    return [
        {
            "name": f"collector: event-loop stall while writing {table.num_rows:,} book rows",
            "value": round(worst_async, 1),
            "unit": "ms max",
            "baseline": round(worst_blocking, 1),
            "note": f"write_async (worker thread, {_rate(table.num_rows, spent):,} rows/s) vs write called in the loop",
        }
    ]


def load(url: str, days: int, symbols: list[str]) -> tuple[int, float]:
    store = PostgresStore(url)
    base: dict[str, pa.Table] = {}
    n = 0
    spent = 0.0
    try:
        for day in range(days):
            for k, sym in enumerate(symbols):
                t = _day(sym, k + 1, day, base)
                t0 = time.perf_counter()
                n += store.write("book", t).written
                spent += time.perf_counter() - t0
    finally:
        store.close()
    return n, spent


def bench_reads(url: str, days: int, quick: bool) -> list[dict]:
    import psycopg

    out = []
    store = PostgresStore(url)
    sym = "BTC-USDT-PERP"
    rng = np.random.default_rng(0)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE book")
        # Bounded LIMIT 1000 query at random hours; ours and the baseline alternate on the
        # same windows so both see the same machine load.
        starts = T0 + rng.integers(0, days * 24 - 1, 61) * 3600 * SEC
        times, base_times = [], []
        with psycopg.connect(url) as conn:
            for i, s in enumerate(starts):
                lo, hi = int(s), int(s) + 3600 * SEC
                t0 = time.perf_counter()
                got = pa.Table.from_batches(
                    list(store.scan("book", "sim", sym, lo, hi, limit=1000))
                )
                t1 = time.perf_counter()
                rows = (
                    conn.cursor(binary=True)
                    .execute(
                        "SELECT ts, levels FROM book WHERE symbol = %s AND exchange = %s AND ts >= %s"
                        " AND ts < %s ORDER BY ts LIMIT 1000",
                        (sym, "sim", lo, hi),
                    )
                    .fetchall()
                )
                ts = np.array([r[0] for r in rows])
                lv = _levels(rows)
                t2 = time.perf_counter()
                if i:  # the first warms the connections
                    times.append(t1 - t0)
                    base_times.append(t2 - t1)
                assert got.num_rows == 1000 and len(ts) == 1000 and lv.shape[0] == 4 * DEPTH
        ours = float(np.median(times) * 1000)
        base = float(np.median(base_times) * 1000)
        out.append(
            {
                "name": f"bounded query: 1 h window, LIMIT 1000, {days * ROWS_PER_DAY * 2:,} rows stored",
                "value": round(ours, 2),
                "unit": "ms median",
                "target": "<= 5",
                "baseline": round(base, 2),
                "ok": ours <= 5,
                "note": "to Arrow, 83 columns; baseline: psycopg binary fetchall, levels decoded by pgcopy; 60 windows, alternating",
            }
        )
        # Streamed 1-day scan with the day's pages cached; median of 5 runs, alternating.
        day0 = T0 + (days // 2) * DAY
        ours_runs, base_runs = [], []
        for rep in range(6):
            t0 = time.perf_counter()
            n = 0
            for batch in store.scan("book", "sim", sym, day0, day0 + DAY):
                _ = batch.column("bid_px_0").to_numpy()
                n += batch.num_rows
            t1 = time.perf_counter()
            assert n == ROWS_PER_DAY
            with psycopg.connect(url) as conn, conn.transaction():
                cur = conn.cursor("day", binary=True)
                cur.execute(
                    "SELECT ts, levels FROM book WHERE symbol = %s AND exchange = %s AND ts >= %s"
                    " AND ts < %s ORDER BY ts",
                    (sym, "sim", day0, day0 + DAY),
                )
                m = 0
                while rows := cur.fetchmany(10_000):
                    lv = _levels(rows)
                    m += lv.shape[1]
                cur.close()
            assert m == ROWS_PER_DAY
            t2 = time.perf_counter()
            if rep:  # the first run caches the pages
                ours_runs.append(_rate(n, t1 - t0))
                base_runs.append(_rate(m, t2 - t1))
        ours_scan, base_scan = round(np.median(ours_runs)), round(np.median(base_runs))
        out.append(
            {
                "name": "streamed 1-day scan (172,800 rows of one series) into NumPy",
                "value": ours_scan,
                "unit": "rows/s",
                "target": ">= 500,000",
                "baseline": base_scan,
                "ok": ours_scan >= 500_000,
                "note": f"median of 5; best {max(ours_runs):,}; baseline: psycopg server-side binary cursor, 10k rows a fetch, levels decoded by pgcopy",
            }
        )
    finally:
        store.close()
    # Peak RSS of a fresh process streaming several days.
    span = min(5, days)
    code = (
        # VmHWM (peak RSS of this process image); ru_maxrss would carry the parent's over exec.
        "import sys; sys.path.insert(0, {src!r});"
        "hwm = lambda: int(next(x for x in open('/proc/self/status') if x.startswith('VmHWM')).split()[1]);"
        "from algo_trade.store.postgres import PostgresStore;"
        "s = PostgresStore({url!r}); n = 0\n"
        "list(s.scan('book', 'sim', 'BTC-USDT-PERP', {a}, {a} + 10**9))\n"  # kernels loaded
        "before = hwm()\n"
        "for b in s.scan('book', 'sim', 'BTC-USDT-PERP', {a}, {b}): n += b.num_rows\n"
        "s.close(); print(n, before, hwm())"
    ).format(src=str(ROOT / "src"), url=url, a=T0, b=T0 + span * DAY)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rows, before_kb, rss_kb = (int(x) for x in r.stdout.split())
    grew = (rss_kb - before_kb) / 1024
    out.append(
        {
            "name": f"RSS growth streaming {span} days ({rows:,} rows, ~{rows * 650 / 2**20:,.0f} MB of levels)",
            "value": round(grew),
            "unit": "MB",
            "target": "bounded (fetchall peaks at 830 MB for 1 day)",
            "ok": grew < 100,
            "note": f"peak RSS {rss_kb / 1024:,.0f} MB, of which {before_kb / 1024:,.0f} MB after imports and opening",
        }
    )
    return out


def _sim_books(days: float) -> list[pa.Table]:
    from algo_trade.simulator import simulate

    return [
        t
        for kind, _sym, t in simulate(
            ["BTC-USDT-PERP", "ETH-USDT-PERP"], days=days, depth=DEPTH, seed=1, chunk_ns=DAY
        )
        if kind == "book"
    ]


def _write_and_size(url: str, parts: list[pa.Table], timescale: bool, old_layout: bool) -> dict:
    """Write `parts` through PostgresStore, then (TimescaleDB) compress: rows/s, bytes/row."""
    from algo_trade.store.postgres import InitOptions
    from algo_trade.store.postgres import write as pg_write

    encoder = pg_write.encode_levels
    if old_layout:  # schema 2's writer: packed int32 levels
        pg_write.encode_levels = pgcopy.pack_levels
    store = PostgresStore(url, init=InitOptions(timescale=timescale))
    try:
        assert store.backend == ("timescaledb" if timescale else "partitions")
        store.write("book", parts[0].slice(0, 10))  # kernels compiled, partitions made
        n = 0
        t0 = time.perf_counter()
        for t in parts:
            n += store.write("book", t.slice(10) if t is parts[0] else t).written
        spent = time.perf_counter() - t0
        before = {r["table"]: r for r in store.table_stats()}["book"]["bytes_after"]
        if timescale:
            store.compress(older_than_ns=0)
        after = {r["table"]: r for r in store.table_stats()}["book"]["bytes_after"]
        rows = n + 10
    finally:
        store.close()
        pg_write.encode_levels = encoder
    return {"rate": _rate(n, spent), "before": before / rows, "after": after / rows, "rows": rows}


def bench_timescale(plain_url: str, quick: bool) -> list[dict]:
    """Issue 15's book target on TimescaleDB, beside the old layout and plain PostgreSQL."""
    from tests.pg import create_database, start_server, timescale_installed

    version = timescale_installed()
    if not version:
        return [
            {
                "name": "TimescaleDB: compressed 20-level book bytes/row and write rate",
                "value": None,
                "unit": "",
                "note": "skipped: TimescaleDB is not installed for these PostgreSQL binaries"
                " (docs/stores.md, 'TimescaleDB for developers')",
            }
        ]
    parts = _sim_books(0.25 if quick else 1.0)
    server = start_server(fsync=True, settings=SERVER_SETTINGS, timescale=True)
    try:
        ts_new = _write_and_size(create_database(server.url), parts, True, False)
        ts_old = _write_and_size(create_database(server.url), parts, True, True)
    finally:
        server.stop()
    plain = _write_and_size(create_database(plain_url), parts, False, False)
    days = "6 h" if quick else "1 day"
    data = f"simulator, {days}, 2 symbols, 20 levels, {ts_new['rows']:,} rows"
    return [
        {
            "name": f"TimescaleDB {version}: bytes per compressed 20-level book row",
            "value": round(ts_new["after"], 1),
            "unit": "bytes/row",
            "target": "<= 140",
            "ok": ts_new["after"] <= 140,
            "baseline": round(ts_old["after"], 1),
            "note": f"{data}; hypertable_size after compress_chunk; baseline: schema 2's packed"
            f" int32 levels, same run; before compression {ts_new['before']:.1f}"
            f" (old {ts_old['before']:.1f}); plain PostgreSQL {plain['after']:.1f}",
        },
        {
            "name": f"TimescaleDB {version}: write 20-level books into the hypertable",
            "value": ts_new["rate"],
            "unit": "rows/s",
            "target": ">= 300,000",
            "ok": ts_new["rate"] >= 300_000,
            "baseline": ts_old["rate"],
            "note": f"{data} in 1-day batches, PostgresStore.write; baseline: schema 2's"
            f" packed layout, same run; plain PostgreSQL (partitions) {plain['rate']:,} rows/s",
        },
    ]


def run(quick: bool) -> list[dict]:
    from tests.pg import create_database, start_server

    server = start_server(fsync=True, settings=SERVER_SETTINGS)
    try:
        rows = bench_write(create_database(server.url), quick)
        rows += bench_async(create_database(server.url), quick)
        url = create_database(server.url)
        days = 2 if quick else 29  # 2 symbols x 29 days x 172,800 = 10.0M rows
        n, spent = load(url, days, ["BTC-USDT-PERP", "ETH-USDT-PERP"])
        rows.append(
            {
                "name": f"write: PostgresStore.write, {n:,} rows in 1-day batches",
                "value": _rate(n, spent),
                "unit": "rows/s",
                "target": ">= 150,000",
                "ok": _rate(n, spent) >= 150_000,
                "note": "the read benchmarks' data set",
            }
        )
        rows += bench_reads(url, days, quick)
        rows += bench_timescale(server.url, quick)
    finally:
        server.stop()
    return rows


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
