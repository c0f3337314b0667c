"""Raw frame recorder: ``<recv ts ns> <raw message>`` lines in gzip files rotated daily.

Layout: ``<dir>/<exchange>/<YYYY-MM-DD>.gz`` (UTC day of the receive time). This is the
format `algo-trade import capture` reads, so normalization can be re-run after a parser
fix. Each open appends a new gzip member (concatenated members are one valid gzip
stream); `flush` makes everything written so far readable after a crash.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path


class RawRecorder:
    def __init__(self, root: Path, exchange: str) -> None:
        self.dir = Path(root) / exchange
        self.dir.mkdir(parents=True, exist_ok=True)
        self._day = ""
        self._f: gzip.GzipFile | None = None
        self.lines = 0

    def write(self, recv_ts_ns: int, raw: str | bytes) -> None:
        day = datetime.fromtimestamp(recv_ts_ns / 1e9, UTC).strftime("%Y-%m-%d")
        if day != self._day:
            self.close()
            self._day = day
            self._f = gzip.open(self.dir / f"{day}.gz", "ab", compresslevel=5)
        if isinstance(raw, str):
            raw = raw.encode()
        # One frame per line: a raw frame holds no newline (JSON escapes them).
        self._f.write(b"%d %s\n" % (recv_ts_ns, raw.replace(b"\n", b" ")))  # type: ignore[union-attr]
        self.lines += 1

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
