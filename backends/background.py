"""Work ahead in background threads: each stage of the sampling stream overlaps the next."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def run_ahead(
    items: Iterable[Item],
    work: Callable[[Item], Result],
    *,
    depth: int,
    name: str,
    then: Callable[[Result], object] | None = None,
) -> Iterator[Result]:
    """work(item) for every item, in order, in one background thread at most `depth` items ahead of the caller.

    numpy, Arrow and torch release the GIL, so the thread overlaps whatever produces the items and
    consumes the results; a deeper queue absorbs their uneven batch times, at `depth` batches of memory.
    `then(result)` (a file writer), if given, runs in a second thread on each result as soon as work
    finishes it, before it is yielded: handed over by the caller, it would wait until the caller had
    produced the next item (on 2 CPUs one stood idle while the model drew the second batch).
    A failed item raises its error where its result would have been yielded; closing the iterator
    early waits for the items in flight.
    """
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix=name))
        after = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-then"))
        pending: deque[Future] = deque()
        for item in items:
            future = pool.submit(work, item)
            pending.append(after.submit(_then, future, then) if then is not None else future)
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _then(done: Future[Result], then: Callable[[Result], object]) -> Result:
    result = done.result()
    then(result)
    return result
