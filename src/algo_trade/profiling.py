"""Where a run's time and memory go: per-stage wall time and peak RSS.

>>> stages = Stages()
>>> with stages.stage("load"):
...     pass
>>> [r.name for r in stages.records]
['load']
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def _status_kb(key: str) -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    return _status_kb("VmRSS:") / 1024


def peak_rss_mb() -> float:
    """Peak resident set size since start (or since `reset_peak_rss`), MB."""
    return _status_kb("VmHWM:") / 1024


def reset_peak_rss() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


@dataclass
class StageRecord:
    name: str
    seconds: float
    peak_rss_mb: float


@dataclass
class Stages:
    """Records named stages of a run; `stage()` is a context manager."""

    records: list[StageRecord] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        reset_peak_rss()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.records.append(StageRecord(name, time.perf_counter() - t0, peak_rss_mb()))

    def as_dicts(self) -> list[dict[str, float | str]]:
        return [
            {
                "stage": r.name,
                "seconds": round(r.seconds, 4),
                "peak_rss_mb": round(r.peak_rss_mb, 1),
            }
            for r in self.records
        ]
