"""Work ahead in one background thread: each stage of the sampling stream overlaps the next."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def run_ahead(items: Iterable[Item], work: Callable[[Item], Result], *, depth: int, name: str) -> Iterator[Result]:
    """work(item) for every item, in order, in one background thread at most `depth` items ahead of the caller.

    numpy, Arrow and torch release the GIL, so the thread overlaps whatever produces the items and
    consumes the results; a deeper queue absorbs their uneven batch times, at `depth` batches of memory.
    A failed item raises its error where its result would have been yielded; closing the iterator
    early waits for the items in flight.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
