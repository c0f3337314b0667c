"""Hostile input: --db / ALGO_TRADE_DB. The forms PostgreSQL users write are accepted,
anything else is refused in one line that never repeats the text (it may hold a
password), and nothing is written anywhere."""

from __future__ import annotations

import os

import pytest

from algo_trade.errors import ConfigError
from algo_trade.store.base import is_postgres_target, postgres_target
from tests.hostile.probe import cli, inproc, refused, snapshot

SECRET = "s3kr1tPW"


@pytest.mark.parametrize(
    "text, want",
    [
        ("postgresql://me@h/db", "postgresql://me@h/db"),
        ("postgres://me@h/db", "postgres://me@h/db"),
        ("PostgreSQL://me@h/db", "postgresql://me@h/db"),
        ("POSTGRES://me@h/db", "postgres://me@h/db"),
        ("  postgresql://me@h/db\n", "postgresql://me@h/db"),
        ("host=h port=5432 dbname=x user=me", "host=h port=5432 dbname=x user=me"),
        (" dbname=x", "dbname=x"),
    ],
)
def test_accepted_forms(text, want):
    assert postgres_target(text) == want and is_postgres_target(text)


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql+psycopg://me:{SECRET}@h/db",
        f"mysql://me:{SECRET}@h/db",
        f"host=h password={SECRET} bogus=1",
        f"./data-{SECRET}",
        f"password = '{SECRET}",
    ],
)
def test_refused_without_echo(text):
    with pytest.raises(ConfigError) as exc:
        postgres_target(text)
    assert SECRET not in str(exc.value) and "postgresql://" in str(exc.value)


def test_lake_paths_stay_lakes():
    assert not is_postgres_target("./algo-trade-data") and not is_postgres_target("a=b/c")


@pytest.mark.parametrize(
    "db",
    [
        f"postgresql+psycopg://me:{SECRET}@127.0.0.1:1/db",
        f"mysql://me:{SECRET}@127.0.0.1/db",
        f"./lake-{SECRET}",
        f"host=127.0.0.1 password={SECRET} nosuchkey=1",
    ],
)
def test_cli_refuses_and_writes_nowhere(tmp_path, capsys, monkeypatch, db):
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "h"
    r = inproc(["generate", "--home", str(home), "--days", "0.01", "--db", db], capsys)
    line = refused(r, "--db")
    assert SECRET not in line and SECRET not in r.out
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "db",
    [
        f"PostgreSQL://me:{SECRET}@127.0.0.1:1/db",
        f" postgres://me:{SECRET}@127.0.0.1:1/db",
        f"host=127.0.0.1 port=1 user=me password={SECRET} dbname=db connect_timeout=2",
    ],
)
def test_cli_accepts_postgres_forms_and_never_prints_password(tmp_path, db):
    """Taken as PostgreSQL (a connection is attempted: port 1 refuses it), not as a lake."""
    r = cli(["db", "stats", "--home", str(tmp_path / "h")], env={"ALGO_TRADE_DB": db})
    line = refused(r, "PostgreSQL")
    assert SECRET not in r.err + r.out and "127.0.0.1" in line
    assert snapshot(tmp_path) == {}


def test_db_copy_from_missing_lake_is_refused_and_not_created(tmp_path, capsys):
    src, dst = tmp_path / "nope", tmp_path / "dst"
    r = inproc(["db", "copy", "--from", str(src), "--to", str(dst),
                "--start", "2024-01-01", "--end", "2024-01-02"], capsys)  # fmt: skip
    refused(r, "no lake there")
    assert not src.exists() and not dst.exists()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--exchange", "Binance"], "exchange"),
        (["--symbol", "BTC-USDT-PERP\n"], "symbol"),
        (["--kind", "candles"], "kind"),
    ],  # fmt: skip
)
def test_db_copy_malformed_names_refused(tmp_path, capsys, extra, needle):
    r = inproc(["db", "copy", "--from", str(tmp_path), "--to", str(tmp_path / "d"),
                "--start", "2024-01-01", "--end", "2024-01-02", *extra], capsys)  # fmt: skip
    refused(r, needle)
