"""Make tests/data/hftbacktest_binance_usdm_btcusdt_20240808_head4000.npz.

The first 4,000 lines of the MIT hftbacktest Binance USD-M capture
(tests/data/binance_usdm_btcusdt_20240808_head12000.gz) converted by hftbacktest's own
converter (`hftbacktest.data.utils.binancefutures.convert`, hftbacktest 2.4.4, MIT;
`pip install '.[bench]'`), exactly as its users make their files. Run:
python tests/data/make/hftbacktest_npz_from_capture.py
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

from hftbacktest.data.utils import binancefutures

DATA = Path(__file__).resolve().parent.parent
SRC = DATA / "binance_usdm_btcusdt_20240808_head12000.gz"
OUT = DATA / "hftbacktest_binance_usdm_btcusdt_20240808_head4000.npz"
LINES = 4000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        head = Path(tmp) / "head.gz"
        with gzip.open(SRC) as src, gzip.open(head, "wb") as dst:
            for i, line in enumerate(src):
                if i >= LINES:
                    break
                dst.write(line)
        data = binancefutures.convert(str(head), output_filename=str(OUT), buffer_size=1_000_000)
    print(OUT.name, len(data), "events")


if __name__ == "__main__":
    main()
