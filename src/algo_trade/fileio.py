"""Files that appear whole or not at all: write a hidden sibling, then rename it over the
target (atomic on POSIX). A reader never sees half a report, a half results part or a
half Parquet file. The one helper for every such write in the library."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from algo_trade.errors import StoreError


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file, or a directory (which makes a rename inside it durable), by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(
    path: str | os.PathLike[str], fsync: bool = False, prefix: str | None = None
) -> Iterator[Path]:
    """Yields a temporary path beside `path` to write; renamed onto `path` when the block
    succeeds, removed when it raises. Parent directories are created.

    fsync: the file and then its directory are fsynced, so the file survives a power cut
    once this returns (stores); reports and caches skip it. prefix: the temporary name's
    start (default ".<name>."; the lake uses ".tmp-<pid>-" so stale ones can be swept).
    An OSError (a directory in the way, no permission, a full disk) becomes one StoreError
    naming the file; nothing is left behind."""
    out = Path(path)
    tmp = out.with_name(
        f"{prefix}{out.name}" if prefix is not None else f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    )
    try:
        if out.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(out))
        out.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, out)
        if fsync:
            fsync_path(out.parent)
    except OSError as exc:
        raise StoreError(_why(out, exc)) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _why(out: Path, exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        return (
            f"cannot write {out}: the disk is full; free space and run again (every file is"
            " written whole or not at all; stores skip rows they already hold)"
        )
    if exc.errno == errno.EISDIR:
        return f"cannot write {out}: it is a directory; give a file name"
    return f"cannot write {out}: {reason}; choose another path or fix its permissions"


def write_text_atomic(path: str | os.PathLike[str], text: str, fsync: bool = False) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
