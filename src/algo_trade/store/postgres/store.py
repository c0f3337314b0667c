"""The PostgreSQL store: connection pool, connection errors, and the class that joins the
write, read and admin sides."""

from __future__ import annotations

import logging
import re
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

from algo_trade.errors import StoreError
from algo_trade.store.postgres.admin import Admin
from algo_trade.store.postgres.read import Reader
from algo_trade.store.postgres.schema import InitOptions, migrate
from algo_trade.store.postgres.write import Writer, _configure

log = logging.getLogger(__name__)


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(url)
    except Exception:
        return "postgresql://…"
    host = d.get("host", "localhost")
    port = d.get("port", "5432")
    user = d.get("user", "")
    db = d.get("dbname", "")
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{db}"


def _scrub(text: str, url: str) -> str:
    """`text` with the URL's password (if any) masked, in case a driver message echoes it."""
    m = re.search(r"://[^:/@]*:([^@]+)@", url) or re.search(r"password=(\S+)", url)
    return text.replace(m.group(1), "***") if m else text


def connect_error(exc: Exception, url: str) -> StoreError:
    """One line naming the problem and the fix; never the password."""
    text = _scrub(str(exc), url).strip()
    msg = text.splitlines()[-1] if text else type(exc).__name__
    where = redact(url)
    low = str(exc).lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return StoreError(
            f"PostgreSQL at {where} refused the login: {msg}; fix the user/password in --db or ALGO_TRADE_DB"
        )
    if "does not exist" in low and "database" in low:
        return StoreError(
            f"{msg} at {where}: create it (createdb NAME) or fix the database name in --db"
        )
    if (
        "connection refused" in low
        or "could not connect" in low
        or "timeout" in low
        or "translate host" in low
    ):
        return StoreError(
            f"cannot reach PostgreSQL at {where} ({msg}); is the server running, and are host/port in --db right?"
        )
    return StoreError(f"PostgreSQL at {where}: {msg}")


class PostgresStore(Writer, Reader, Admin):
    """PostgreSQL/TimescaleDB store behind a connection pool. Thread-safe.

    >>> store = PostgresStore("postgresql://me@localhost/algo_trade")  # doctest: +SKIP
    >>> store.write("book", books)  # doctest: +SKIP
    """

    def __init__(self, url: str, pool_size: int = 8, init: InitOptions | None = None) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self._url = url
        self.display_url = self.url = redact(url)  # never the password
        try:
            with psycopg.connect(url, connect_timeout=10) as conn:
                conn.autocommit = False
                self.init_report = migrate(conn, init)
                with conn.cursor() as cur:
                    cur.execute("SELECT key, value FROM algo_trade_settings")
                    self.settings = dict(cur.fetchall())
        except psycopg.OperationalError as exc:
            raise connect_error(exc, url) from None
        except psycopg.Error as exc:
            first = (_scrub(str(exc), url).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"PostgreSQL at {self.display_url}: {first}") from None
        for note in self.init_report.notes:
            log.info(note)
        self.backend = self.settings["backend"]
        self.interval_ns = int(self.settings["chunk_interval_ns"])
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=True,
            configure=_configure,
            kwargs={"connect_timeout": 10, "autocommit": True},
            name="algo-trade",
        )
        self._partitions: set[str] = set()
        self._depths: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="pg-encode")
        # Closed at garbage collection or exit even when the caller forgets close().
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._encoder)

    def __repr__(self) -> str:
        return f"PostgresStore({self.display_url!r})"

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ errors
    def _fail(self, exc: Exception, doing: str) -> StoreError:
        import psycopg

        text = _scrub(str(exc), self._url).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        if isinstance(exc, psycopg.OperationalError):
            return StoreError(
                f"lost the connection to PostgreSQL at {self.display_url} while {doing} ({first});"
                " nothing of this batch was stored, retry when the server is back"
                if doing == "writing"
                else f"lost the connection to PostgreSQL at {self.display_url} while {doing} ({first})"
            )
        return StoreError(f"PostgreSQL at {self.display_url} failed while {doing}: {first}")


def _shutdown(pool, encoder) -> None:
    pool.close()
    encoder.shutdown(wait=True)
