"""Make tests/data/tardis_binance-futures_incremental_book_L2_BTCUSDT_hftbacktest.csv.gz.

Re-lays the first 3,000 lines of the MIT hftbacktest Binance USD-M capture
(tests/data/binance_usdm_btcusdt_20230404_head3000.gz) in Tardis' incremental_book_L2
layout, as Tardis publishes Binance futures depth: the REST snapshot that the first
applied diff bridges, with is_snapshot=true at that diff's time (a snapshot is stamped
no later than the first update it precedes), then every diff from that one on, at its
event time E; local_timestamp is the capture's receive time (µs). Written by plain
Python (json + the documented Binance rules) so the importer is tested against an
input it did not make. Run: python tests/data/make/tardis_l2_from_capture.py
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent
SRC = DATA / "binance_usdm_btcusdt_20230404_head3000.gz"
OUT = DATA / "tardis_binance-futures_incremental_book_L2_BTCUSDT_hftbacktest.csv.gz"


def main() -> None:
    snap = None
    diffs = []
    with gzip.open(SRC, "rt") as fh:
        for line in fh:
            recv, raw = line.split(" ", 1)
            obj = json.loads(raw)
            if "lastUpdateId" in obj:
                snap = (obj, int(recv))
            elif obj.get("data", {}).get("e") == "depthUpdate":
                diffs.append((obj["data"], int(recv)))
    assert snap is not None
    obj, snap_local = snap
    last_id = obj["lastUpdateId"]
    first = next(i for i, (d, _) in enumerate(diffs) if d["u"] >= last_id)
    assert diffs[first][0]["U"] <= last_id
    rows = ["exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"]
    snap_ts = min(obj["E"], diffs[first][0]["E"]) * 1000
    for side, key in (("bid", "bids"), ("ask", "asks")):
        for p, q in obj[key]:
            if float(q) > 0:
                rows.append(f"binance-futures,BTCUSDT,{snap_ts},{snap_local},true,{side},{p},{q}")
    prev_u = None
    for d, local in diffs[first:]:
        assert prev_u is None or d["pu"] == prev_u  # no gap in this slice
        prev_u = d["u"]
        local = max(local, snap_local)
        for side, key in (("bid", "b"), ("ask", "a")):
            for p, q in d[key]:
                rows.append(f"binance-futures,BTCUSDT,{d['E'] * 1000},{local},false,{side},{p},{q}")
    with gzip.open(OUT, "wt", compresslevel=9) as out:
        out.write("\n".join(rows) + "\n")
    print(OUT.name, len(rows) - 1, "rows")


if __name__ == "__main__":
    main()
