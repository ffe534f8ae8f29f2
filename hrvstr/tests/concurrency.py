"""Concurrency helpers for the tests: threads started together, and separate processes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connections


def run_together(count: int, work) -> list:
    """Start ``count`` calls of ``work`` at the same instant; each thread closes its connection."""
    barrier = threading.Barrier(count)

    def one(index: int):
        try:
            barrier.wait()
            return work(index)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def run_in_processes(count: int, work) -> list:
    """``work(index)`` in ``count`` forked processes released at once; their results in order.

    Each child gets its own PostgreSQL connection (the parent's are closed before the fork, so
    no socket is shared) and its own copy of the in-process offline Stripe, which only serves
    reads here. The results come back over a pipe.
    """
    import multiprocessing
    import os

    from django.db import connections

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(count)
    results = context.SimpleQueue()  # put() writes at once (a Queue's feeder thread would not)
    connections.close_all()

    def child(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            results.put((index, work(index)))
        except BaseException as exc:
            results.put((index, f"error: {exc!r}"))
        finally:
            connections.close_all()
            os._exit(0)

    processes = [context.Process(target=child, args=(i,)) for i in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    collected = {}
    while not results.empty():
        index, result = results.get()
        collected[index] = result
    return [collected.get(i, "no answer") for i in range(count)]
