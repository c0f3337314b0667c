"""Venue adapters: the registry, what each adapter asks the collector to do, and the rule
that the collector core and the CLI never name a venue."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import algo_trade
from algo_trade.collect.config import CollectConfig
from algo_trade.errors import ConfigError
from algo_trade.exchanges import EXCHANGES, adapter_for
from algo_trade.exchanges.adapter import VenueSettings

SRC = Path(algo_trade.__file__).parent


def _names_in_code(path: Path) -> set[str]:
    """Identifiers and string constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docs.add(id(body[0].value))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.alias):
            out.add(node.name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docs:
                out.add(node.value)
    return out


@pytest.mark.parametrize(
    "path",
    sorted((SRC / "collect").glob("*.py")) + [SRC / "cli" / "collect.py"],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_collector_core_and_cli_never_name_a_venue(path):
    code = _names_in_code(path)
    for venue in EXCHANGES:
        hits = sorted(x for x in code if venue in x.lower())
        assert not hits, f"{path.name} names {venue}: {hits}"


def test_registry_gives_every_venue_one_adapter_with_live_and_test_endpoints():
    for name in EXCHANGES:
        a = adapter_for(name)
        assert a.name == name and a.title
        live, test = a.endpoints("live"), a.endpoints("test")
        assert live.ws_url.startswith("wss://") and live.rest_url.startswith("https://")
        assert test.ws_url.startswith("wss://") and test != live
        n = a.normalizer(["BTC-USDT-PERP"], streams=("book", "depth"))
        assert n.exchange == name and n.emit_book and n.emit_depth
    with pytest.raises(ConfigError, match="unknown exchange 'kraken'"):
        adapter_for("kraken")
    with pytest.raises(ConfigError, match="no 'main' network"):
        adapter_for("binance").endpoints("main")


def test_binance_connections_chunk_streams_and_snapshots_name_the_symbol():
    a = adapter_for("binance")
    syms = [f"C{i}-USDT-PERP" for i in range(250)]
    conns = a.connections(syms, ["book", "trade"], "wss://x")
    # 100 symbols per connection: 3 per feed, each URL naming only its own symbols
    assert [c.feed for c in conns] == ["book"] * 3 + ["trade"] * 3
    assert [len(c.symbols) for c in conns[:3]] == [100, 100, 50]
    assert conns[0].url.startswith("wss://x/stream?streams=c0usdt@depth@100ms/")
    assert conns[2].url.count("@depth@100ms") == 50 and "c249usdt" in conns[2].url
    assert a.feeds(["depth", "book", "trade"]) == ["book", "trade"]  # depth reads the book feed
    req = a.snapshot("BTC-USDT-PERP")
    assert (req.method, req.path) == ("GET", "/fapi/v1/depth?symbol=BTCUSDT&limit=1000")
    msg = a.snapshot_message("BTC-USDT-PERP", b' {"lastUpdateId":5,"bids":[],"asks":[]}')
    assert json.loads(msg) == {"s": "BTCUSDT", "lastUpdateId": 5, "bids": [], "asks": []}
    assert a.resubscribe(["BTC-USDT-PERP"]) == []  # books are repaired by REST snapshots


def test_bybit_subscriptions_in_chunks_of_ten_pings_and_resubscribe():
    a = adapter_for("bybit")
    syms = [f"C{i}-USDT-PERP" for i in range(23)]
    (conn,) = a.connections(syms, ["trade"], "wss://x")
    assert conn.url == "wss://x/v5/public/linear" and conn.ping == '{"op":"ping"}'
    args = [json.loads(m)["args"] for m in conn.subscribe]
    assert [len(x) for x in args] == [10, 10, 3] and args[0][0] == "publicTrade.C0USDT"
    assert a.snapshot("BTC-USDT-PERP") is None
    msgs = [json.loads(m) for m in a.resubscribe(["BTC-USDT-PERP"])]
    assert msgs == [
        {"op": "unsubscribe", "args": ["orderbook.50.BTCUSDT"]},
        {"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]},
    ]


def test_hyperliquid_funding_is_polled_and_liquidations_refused():
    a = adapter_for("hyperliquid")
    conns = a.connections(["BTC-USDT-PERP"], ["book", "funding"], "wss://x")
    assert [c.feed for c in conns] == ["book"]  # funding has no websocket here
    assert json.loads(conns[0].subscribe[0]) == {
        "method": "subscribe",
        "subscription": {"type": "l2Book", "coin": "BTC"},
    }
    (poll,) = a.polls(["BTC-USDT-PERP"], ["book", "funding"], VenueSettings("w", "r", 0.25))
    assert poll.interval_s == 0.25 and poll.request.method == "POST"
    assert json.loads(poll.request.body) == {"type": "metaAndAssetCtxs"}
    (default,) = a.polls(["BTC-USDT-PERP"], ["funding"], VenueSettings("w", "r"))
    assert default.interval_s == 5.0
    cfg = CollectConfig(("hyperliquid",), ("BTC-USDT-PERP",), streams=("liquidation",))
    with pytest.raises(ConfigError, match="no public liquidation stream"):
        cfg.validate()


def test_config_uses_given_settings_else_the_networks_endpoints():
    cfg = CollectConfig(
        ("binance", "bybit"),
        ("BTC-USDT-PERP",),
        venues={"binance": VenueSettings("ws://a", "http://a")},
        network="test",
    )
    cfg.validate()
    assert cfg.settings("binance") == VenueSettings("ws://a", "http://a")
    assert cfg.settings("bybit").ws_url == "wss://stream-testnet.bybit.com"
