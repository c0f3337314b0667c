"""A scripted order-level strategy for the events-engine tests: it replays actions kept in
its user array (rows of 8 floats: t_ns, action, side|row, price, qty, otype*10+tif,
reduce_only, handle out) at its wake-ups (every `every_ms` and on fills)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from algo_trade.engine import orderapi as oa
from algo_trade.strategies.orderlevel import register

SUBMIT, CANCEL, MODIFY = 0, 1, 2
ROW = 8
HEAD = 8


class ScriptParams(NamedTuple):
    every_ms: float = 1.0


@register("test_script", ScriptParams)
@njit(cache=True, nogil=True)
def scripted(ctx, p):  # pragma: no cover - compiled
    oa.set_wake(ctx, np.int64(p.every_ms * 1e6), True)
    u = oa.user(ctx)
    while oa.wait(ctx):
        while u[1] < u[0]:
            r = HEAD + int(u[1]) * ROW
            if u[r] > oa.now(ctx):
                break
            a = int(u[r + 1])
            if a == 9:
                raise ValueError("scripted failure")
            if a == SUBMIT:
                code = int(u[r + 5])
                u[r + 7] = oa.submit(ctx, int(u[r + 2]), u[r + 3], u[r + 4], code // 10, code % 10,
                                     u[r + 6] != 0.0)  # fmt: skip
            else:
                h = int(u[HEAD + int(u[r + 2]) * ROW + 7])
                if a == CANCEL:
                    oa.cancel(ctx, h)
                else:
                    oa.modify(ctx, h, u[r + 3], u[r + 4])
            u[1] += 1
        u[2] = oa.position(ctx)  # what the strategy last saw
        u[3] = oa.equity(ctx)


def script(rows: list[tuple], slots: int = 512) -> np.ndarray:
    """The user array for `scripted`: rows (t_ms, action, side|row, price, qty, otype*10+tif,
    reduce_only)."""
    u = np.zeros(max(slots, HEAD + ROW * len(rows)))
    u[0] = len(rows)
    for i, row in enumerate(rows):
        r = HEAD + i * ROW
        vals = list(row) + [0.0] * (7 - len(row))
        vals[0] = vals[0] * 1e6
        u[r : r + 7] = vals
        u[r + 7] = -1
    return u
