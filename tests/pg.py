"""A throwaway PostgreSQL server for tests (and benchmarks).

`pg_url` (session fixture) is a ``postgresql://`` URL with a password to a server that
this module starts with initdb + pg_ctl on a free 127.0.0.1 port, its data and unix
socket in a temporary directory, and stops at session end. ``ALGO_TRADE_TEST_DB``
points the tests at an existing server instead. Root cannot run initdb, so under root
the server runs as an unprivileged system user (``algotest``, created if missing, else
``nobody``). Tests skip, with the reason, only when no PostgreSQL binaries exist.

`pg_db` (function fixture) is a URL to a fresh, empty database on that server.

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
        return Path(found).parent
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2].split(".")[0])
    )
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return Path(d)
    return None


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

    def _run(self, args: list[str]) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)

    def stop(self) -> None:
        self._run(["pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(fsync: bool = False, settings: dict[str, str] | None = None) -> PgServer:
    """initdb + pg_ctl start on a free port. Raises RuntimeError with the server's log."""
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


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL server for this test session (see module docstring)."""
    existing = os.environ.get("ALGO_TRADE_TEST_DB")
    if existing:
        yield existing
        return
    if pg_bin_dir() is None:
        pytest.skip(
            "no PostgreSQL binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin"
        )
    server = start_server()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """URL of a fresh, empty database, dropped after the test (an existing server given by
    ALGO_TRADE_TEST_DB keeps no leftovers)."""
    import psycopg
    from psycopg import sql

    url = create_database(pg_url)
    yield url
    name = url.rpartition("/")[2].split("?", 1)[0]
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error:
        pass  # the session's own server is removed whole at the end anyway
