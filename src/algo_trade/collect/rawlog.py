"""Raw frame recorder: ``<recv ts ns> <raw message>`` lines in gzip files rotated daily.

Layout: ``<dir>/<exchange>/<YYYY-MM-DD>.gz`` (UTC day of the receive time). This is the
format `algo-trade import capture` reads, so normalization can be re-run after a parser
fix. Lines are buffered and each `flush` (every collector flush, about once a second)
appends them as one complete gzip member (concatenated members are one valid gzip
stream): after a crash the file ends with whole members, readable to the end, and
only the lines since the last flush are missing.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

NS_PER_DAY = 86_400 * 1_000_000_000


class RawRecorder:
    def __init__(self, root: Path, exchange: str, compresslevel: int = 5) -> None:
        self.dir = Path(root) / exchange
        self.dir.mkdir(parents=True, exist_ok=True)
        self.level = compresslevel
        self._lines: dict[int, list[bytes]] = {}  # UTC day number -> lines not yet written
        self._day = -1
        self._buf: list[bytes] = []
        self.lines = 0

    def write(self, recv_ts_ns: int, raw: str | bytes) -> None:
        day = recv_ts_ns // NS_PER_DAY
        if day != self._day:
            self._day = day
            self._buf = self._lines.setdefault(day, [])
        if isinstance(raw, str):
            raw = raw.encode()
        # One frame per line: a raw frame holds no newline (JSON escapes them).
        self._buf.append(b"%d %s\n" % (recv_ts_ns, raw.replace(b"\n", b" ")))
        self.lines += 1

    def flush(self) -> None:
        """Append the buffered lines to their day files as whole gzip members."""
        pending, self._lines, self._day = self._lines, {}, -1
        for day, lines in pending.items():
            if not lines:
                continue
            name = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")
            member = gzip.compress(b"".join(lines), compresslevel=self.level)
            with open(self.dir / f"{name}.gz", "ab") as f:
                f.write(member)

    def close(self) -> None:
        self.flush()
