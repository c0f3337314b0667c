"""A throwaway PostgreSQL server for tests (and benchmarks).

`pg_url` (session fixture) is a ``postgresql://`` URL with a password to a server that
this module starts with initdb + pg_ctl on a free 127.0.0.1 port, its data and unix
socket in a temporary directory, and stops at session end. ``ALGO_TRADE_TEST_DB``
points the tests at an existing server instead. Root cannot run initdb, so under root
the server runs as an unprivileged system user (``algotest``, created if missing, else
``nobody``). Tests skip, with the reason, only when no PostgreSQL binaries exist.

`pg_db` (function fixture) is a URL to a fresh, empty database on that server.

TimescaleDB: when it is installed for these binaries, the server preloads it
(``shared_preload_libraries``), so the whole suite runs on hypertables;
``ALGO_TRADE_TEST_PRELOAD=0`` starts it without preloading instead (the state where
``CREATE EXTENSION`` is FATAL). `pg_url_unloaded` is a second server, installed but not
preloaded, for the tests of that state; `ts_db` a fresh database on a server with
TimescaleDB, skipped with the reason where it is not installed (as in CI).

Both are registered once, in tests/conftest.py, so the whole session shares one server.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "s3cret-test-pw"  # scram on TCP: lets tests check that wrong passwords fail cleanly
SUPERUSER = "postgres"


def pg_bin_dir() -> Path | None:
    """Directory of initdb/pg_ctl: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        # /usr/local/bin/initdb may be a link into /usr/lib/postgresql/15/bin: the real
        # directory is where pg_config (and so TimescaleDB's files) can be found.
        return Path(found).resolve().parent
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2].split(".")[0])
    )
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return Path(d)
    return None


def _pg_dirs(bindir: Path) -> tuple[Path, Path]:
    """(sharedir, pkglibdir) of the installation of `bindir`."""
    cfg = bindir / "pg_config"
    if cfg.exists():
        r = subprocess.run([str(cfg), "--sharedir", "--pkglibdir"], capture_output=True, text=True)
        if r.returncode == 0 and len(r.stdout.split()) == 2:
            share, lib = r.stdout.split()
            return Path(share), Path(lib)
    version = bindir.parent.name  # Debian layout: /usr/lib/postgresql/15/bin
    return Path(f"/usr/share/postgresql/{version}"), bindir.parent / "lib"


def timescale_installed(bindir: Path | None = None) -> str | None:
    """The TimescaleDB version installed for the server of `bindir`, or None."""
    bindir = bindir or pg_bin_dir()
    if bindir is None:
        return None
    share, lib = _pg_dirs(bindir)
    control = share / "extension" / "timescaledb.control"
    if not control.exists() or not (lib / "timescaledb.so").exists():
        return None
    for line in control.read_text().splitlines():
        if line.strip().startswith("default_version"):
            return line.split("=", 1)[1].strip().strip("'")
    return "?"


NO_TIMESCALE = (
    "TimescaleDB is not installed for the PostgreSQL server used by the tests"
    " (build it as docs/stores.md 'TimescaleDB for developers' says, or point"
    " ALGO_TRADE_TEST_DB at a server that preloads it)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_user() -> str | None:
    """None when not root; else an unprivileged user to run the server as."""
    if os.geteuid() != 0:
        return None
    for name in ("algotest",):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    r = subprocess.run(
        ["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", "algotest"],
        capture_output=True,
        text=True,
    )
    if r.returncode == 0 or "already exists" in r.stderr:
        return "algotest"
    return "nobody"


@dataclass
class PgServer:
    """A running throwaway cluster; `stop()` removes it."""

    url: str
    port: int
    root: Path
    bindir: Path
    user: str | None
    timescale: bool = False  # started with TimescaleDB preloaded

    def _run(self, args: list[str]) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)

    def stop(self) -> None:
        self._run(["pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(
    fsync: bool = False, settings: dict[str, str] | None = None, timescale: bool = False
) -> PgServer:
    """initdb + pg_ctl start on a free port. Raises RuntimeError with the server's log.

    `timescale`: preload TimescaleDB (it must be installed for these binaries)."""
    bindir = pg_bin_dir()
    if bindir is None:
        raise FileNotFoundError(
            "no PostgreSQL binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin"
        )
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="algo-pg-"))
    os.chmod(root, 0o700)
    if user:
        info = pwd.getpwnam(user)
        os.chown(root, info.pw_uid, info.pw_gid)
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if user:
        os.chown(pwfile, info.pw_uid, info.pw_gid)
    port = _free_port()
    server = PgServer(
        url=f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{port}/postgres",
        port=port,
        root=root,
        bindir=bindir,
        user=user,
        timescale=timescale,
    )
    r = server._run(
        [
            "initdb",
            "-D",
            str(root / "data"),
            "-U",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            *([] if fsync else ["--no-sync"]),
        ]
    )
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {r.stderr.strip()[-2000:]}")
    conf = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{root}'",
        "fsync": "on" if fsync else "off",
        "synchronous_commit": "on" if fsync else "off",
        "full_page_writes": "on" if fsync else "off",
        "max_connections": "100",
        "log_min_messages": "warning",
        **(
            {"shared_preload_libraries": "'timescaledb'", "timescaledb.telemetry_level": "off"}
            if timescale
            else {}
        ),
        **(settings or {}),
    }
    with open(root / "data" / "postgresql.conf", "a") as fh:
        fh.write("\n# algo-trade test server\n")
        for k, v in conf.items():
            fh.write(f"{k} = {v}\n")
    for _attempt in range(5):
        r = server._run(
            ["pg_ctl", "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-t", "60", "start"]
        )
        if r.returncode == 0:
            return server
        log = (root / "log").read_text()[-2000:] if (root / "log").exists() else ""
        if "Address already in use" not in log:
            break
        # Another process took the port between our probe and the server's bind: pick another.
        port = _free_port()
        with open(root / "data" / "postgresql.conf", "a") as fh:
            fh.write(f"port = {port}\n")
        server.port = port
        server.url = f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{port}/postgres"
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"pg_ctl start failed: {r.stderr.strip()} {log}")


def create_database(url: str, name: str | None = None) -> str:
    """CREATE DATABASE on the server of `url`; returns the new database's URL."""
    import psycopg
    from psycopg import sql

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = url.rpartition("/")
    query = ""
    if "?" in url.rpartition("/")[2]:
        query = "?" + url.rpartition("/")[2].split("?", 1)[1]
    return f"{base}/{name}{query}"


def _preload_wanted() -> bool:
    return os.environ.get("ALGO_TRADE_TEST_PRELOAD", "1") != "0"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | None]:
    """The session's own server (None when ALGO_TRADE_TEST_DB names one)."""
    if os.environ.get("ALGO_TRADE_TEST_DB"):
        yield None
        return
    if pg_bin_dir() is None:
        pytest.skip(
            "no PostgreSQL binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin"
        )
    server = start_server(timescale=bool(timescale_installed()) and _preload_wanted())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server: PgServer | None) -> str:
    """URL of a PostgreSQL server for this test session (see module docstring)."""
    return pg_server.url if pg_server else os.environ["ALGO_TRADE_TEST_DB"]


def _server_preloads(url: str) -> bool:
    import psycopg

    with psycopg.connect(url) as conn:
        libs = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    return "timescaledb" in libs


@pytest.fixture(scope="session")
def pg_url_unloaded(pg_url: str, pg_server: PgServer | None) -> Iterator[str]:
    """A server with TimescaleDB installed but not preloaded: the session's own when it is
    in that state already, else a second one started for the tests that need it."""
    if pg_server is None:
        if _server_preloads(pg_url):
            pytest.skip("ALGO_TRADE_TEST_DB preloads TimescaleDB; no second server is started")
        yield pg_url
        return
    if not timescale_installed():
        pytest.skip(NO_TIMESCALE + "; without it the main test server already is plain PostgreSQL")
    if not pg_server.timescale:
        yield pg_url
        return
    server = start_server(timescale=False)
    try:
        yield server.url
    finally:
        server.stop()


def _fresh_db(server_url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    url = create_database(server_url)
    yield url
    name = url.rpartition("/")[2].split("?", 1)[0]
    try:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error:
        pass  # the session's own server is removed whole at the end anyway


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """URL of a fresh, empty database, dropped after the test (an existing server given by
    ALGO_TRADE_TEST_DB keeps no leftovers)."""
    yield from _fresh_db(pg_url)


@pytest.fixture
def ts_db(pg_db: str, pg_url: str) -> str:
    """A fresh database on a server that preloads TimescaleDB; skipped where none does."""
    if not _server_preloads(pg_url):
        if timescale_installed() and not os.environ.get("ALGO_TRADE_TEST_DB"):
            pytest.skip(
                "TimescaleDB is installed but the test server does not preload it"
                " (ALGO_TRADE_TEST_PRELOAD=0): the not-preloaded state is under test"
            )
        pytest.skip(NO_TIMESCALE)
    return pg_db


@pytest.fixture
def unloaded_db(pg_url_unloaded: str) -> Iterator[str]:
    """A fresh database on a server where TimescaleDB is installed but not preloaded."""
    yield from _fresh_db(pg_url_unloaded)
