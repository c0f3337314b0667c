"""Run an iterator on a worker thread a bounded number of items ahead of its consumer.

For producers that release the GIL (gzip decompression, a database cursor's socket reads):
the consumer works on one item while the next is being made. The one helper for both the
capture importer's line blocks and the PostgreSQL scan's pages."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


def prefetch(items: Iterator[T], depth: int = 2, name: str = "prefetch") -> Iterator[T]:
    """`items` produced on a thread named `name`, at most `depth` ahead; its exceptions are
    raised here. Abandoning (closing) the returned generator stops the worker, and the
    worker closes `items` when it ends (a generator's cleanup runs)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as exc:  # noqa: BLE001 - raised in the consuming thread
            q.put(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, daemon=True, name=name)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)
