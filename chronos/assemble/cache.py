"""In-process LRU cache of assembly results, safe to share between threads.

RL episodes revisit the same PTX over and over (every episode starts from the original kernel,
and popular transform prefixes recur), so a repeated state must not pay ~100 ms of ptxas again.
Rejections are cached too: ptxas is deterministic, and invalid transforms recur as well.
Concurrent requests for one key wait for a single ptxas run instead of starting their own.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int
    maxsize: int


class LruCache(Generic[T]):
    """Key -> value (or the exception computing it raised), least recently used evicted first.

    `remember(exc)` decides which exceptions are cached; others (timeouts) propagate to every
    waiter but leave no entry, so the next request tries again.
    """

    def __init__(self, maxsize: int, remember: Callable[[BaseException], bool] = lambda exc: False):
        self.maxsize = maxsize
        self._remember = remember
        self._data: OrderedDict[Hashable, Future[T]] = OrderedDict()
        self._inflight: dict[Hashable, Future[T]] = {}
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value for `key`, computing it (once, across threads) on a miss."""
        with self._lock:
            done = self._data.get(key)
            if done is not None:
                self._data.move_to_end(key)
                self._hits += 1
            else:
                done = self._inflight.get(key)
                if done is not None:
                    self._hits += 1
                else:
                    self._misses += 1
                    pending: Future[T] = Future()
                    self._inflight[key] = pending
        if done is not None:
            return _outcome(done)
        try:
            pending.set_result(compute())
        except BaseException as exc:
            pending.set_exception(exc)
        with self._lock:
            del self._inflight[key]
            error = pending.exception()
            if self.maxsize > 0 and (error is None or self._remember(error)):
                self._data[key] = pending
                while len(self._data) > self.maxsize:
                    self._data.popitem(last=False)
        return pending.result()

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._data), self.maxsize)

    def clear(self) -> None:
        """Forget every entry and reset the counters (in-flight computations still finish)."""
        with self._lock:
            self._data.clear()
            self._hits = self._misses = 0


def _outcome(done: Future[T]) -> T:
    """The value, or a fresh copy of the exception: re-raising one shared instance would grow
    its traceback on every hit and let callers' frames leak into each other's."""
    error = done.exception()
    if error is None:
        return done.result()
    raise copy.copy(error) from None
