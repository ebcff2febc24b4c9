"""The one bounded, thread-safe, single-flight memo used across Chronos.

RL episodes revisit the same PTX over and over (every episode starts from the original kernel,
and popular transform prefixes recur), so repeated work (ptxas runs, decoding, transforms,
masks, features) is memoized, always with a bound so a long run's memory stays flat. Storage
and eviction are cachetools' `LRUCache`; this adds what it lacks: concurrent requests for one
key wait for a single computation instead of starting their own (single flight), chosen
exceptions are remembered like values (ptxas rejections are deterministic), hit/miss counts,
and `clear_all()` for the registry to drop every memo when a kernel spec is replaced.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, NamedTuple, TypeVar

from cachetools import LRUCache

T = TypeVar("T")


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int
    maxsize: int


_ALL: weakref.WeakSet[BoundedCache] = weakref.WeakSet()


class BoundedCache(Generic[T]):
    """Key -> value (or the exception computing it raised), least recently used evicted first.

    `remember(exc)` decides which exceptions are cached; others (timeouts) propagate to every
    waiter but leave no entry, so the next request tries again. `maxsize=0` caches nothing
    (every call computes) but still merges concurrent calls for one key.
    """

    def __init__(
        self,
        maxsize: int,
        remember: Callable[[BaseException], bool] = lambda exc: False,
        name: str = "",
    ):
        self.maxsize = maxsize
        self.name = name
        self._remember = remember
        self._data: LRUCache[Hashable, Future[T]] = LRUCache(maxsize=max(1, maxsize))
        self._inflight: dict[Hashable, Future[T]] = {}
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        _ALL.add(self)

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value for `key`, computing it (once, across threads) on a miss."""
        with self._lock:
            done = self._data.get(key)  # get() marks the key most recently used
            if done is not None:
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
                self._data[key] = pending  # LRUCache evicts the least recently used
        return pending.result()

    def peek(self, key: Hashable) -> bool:
        """Is a finished entry cached for `key` (without touching its recency)?"""
        with self._lock:
            return key in self._data

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._data), self.maxsize)

    def clear(self) -> None:
        """Forget every entry and reset the counters (in-flight computations still finish)."""
        with self._lock:
            self._data.clear()
            self._hits = self._misses = 0


def clear_all() -> None:
    """Clear every BoundedCache of the process (a kernel spec was replaced, for example)."""
    for cache in list(_ALL):
        cache.clear()


def _outcome(done: Future[T]) -> T:
    """The value, or a fresh copy of the exception: re-raising one shared instance would grow
    its traceback on every hit and let callers' frames leak into each other's."""
    error = done.exception()
    if error is None:
        return done.result()
    raise copy.copy(error) from None
