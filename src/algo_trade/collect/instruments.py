"""Check requested symbols against each venue's instrument list before collecting."""

from __future__ import annotations

import asyncio

from algo_trade.collect.config import CollectConfig
from algo_trade.errors import ConfigError, ExchangeError
from algo_trade.exchanges import adapter_for


async def listed(exchange: str, rest_url: str) -> set[str]:
    """Our symbols the venue lists (its adapter says where and how to read them)."""
    import aiohttp

    adapter = adapter_for(exchange)
    req = adapter.instruments()
    rest = rest_url.rstrip("/")
    headers = {"Content-Type": "application/json"} if req.body is not None else None
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.request(req.method, rest + req.path, data=req.body, headers=headers) as r,
        ):
            r.raise_for_status()
            return adapter.parse_instruments(await r.read())
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ExchangeError(
            f"cannot reach {exchange} at {rest}: {exc or type(exc).__name__}"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ExchangeError(
            f"{exchange} at {rest} answered an unusable instrument list: {exc}"
        ) from None


def check_listed(cfg: CollectConfig) -> None:
    """Every symbol of `cfg` is listed on every venue; unreachable venues fail here.

    Raises ConfigError (not listed) or ExchangeError (unreachable, unusable answer)."""

    async def run() -> list[set[str]]:
        return await asyncio.gather(
            *(listed(ex, cfg.settings(ex).rest_url) for ex in cfg.exchanges)
        )

    names_by_venue = asyncio.run(run())
    for ex, names in zip(cfg.exchanges, names_by_venue, strict=True):
        for s in adapter_for(ex).normalizer(list(cfg.symbols)).symbols:
            if s not in names:
                raise ConfigError(f"{s} is not listed on {ex} (checked its instrument list)")
